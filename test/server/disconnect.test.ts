// A client that goes away stops its generation: proven by what the engine reports (finish
// 'abort' after far fewer tokens than asked for), not by timing, and by its admission slot
// coming free (the server admits one request at a time here).
import { request as httpRequest } from 'node:http';
import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MODEL, openaiClient, recordEngine, serveTinyModel, waitFor } from './helpers.ts';

/** ignore_eos and a context of 4096: undisturbed, every request would run ~4090 tokens. */
const LONG_REQUEST = { prompt: 'Keep going', max_tokens: 10000, ignore_eos: true, temperature: 0 };
const CONTEXT = 4096;

describe('client disconnects cancel generation', () => {
  const served = serveTinyModel({ maxQueue: 1 }, { max_position_embeddings: CONTEXT });

  /** Runs `disconnect` once the engine has generated a few tokens; returns the engine's account. */
  async function expectAbort(start: () => Promise<() => void>): Promise<void> {
    const recorder = recordEngine(served.test.model);
    try {
      const disconnect = await start();
      await waitFor(() => recorder.tokens() >= 5);
      disconnect();
      const [finished] = await waitFor(() => (recorder.finished().length > 0 ? recorder.finished() : null));
      expect(finished.finishReason).toBe('abort');
      expect(finished.completionTokens).toBeGreaterThanOrEqual(5);
      expect(finished.completionTokens).toBeLessThan(CONTEXT / 4);
      // Its slot is free again, and the engine holds nothing of it.
      await waitFor(() => served.server.gate.size === 0);
      expect(served.test.model.engine.numInFlight).toBe(0);
      // ignore_eos: a sampled end-of-sequence token would end it after one (a rare flake in CI).
      const again: OpenAI.CompletionCreateParamsNonStreaming & { ignore_eos: boolean } = {
        model: MODEL,
        prompt: 'again',
        max_tokens: 2,
        ignore_eos: true,
      };
      const next = await openaiClient(served.server).completions.create(again);
      expect(next.usage?.completion_tokens).toBe(2);
    } finally {
      recorder.stop();
    }
  }

  it('when an SSE reader goes away', async () => {
    await expectAbort(async () => {
      const controller = new AbortController();
      const response = await fetch(`${served.server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...LONG_REQUEST, stream: true }),
        signal: controller.signal,
      });
      const reader = response.body?.getReader();
      await reader?.read();
      return () => controller.abort();
    });
  });

  it('when the openai client aborts its stream', async () => {
    await expectAbort(async () => {
      const params: OpenAI.ChatCompletionCreateParamsStreaming & { ignore_eos: boolean } = {
        model: MODEL,
        messages: [{ role: 'user', content: 'Keep going' }],
        max_tokens: 10000,
        temperature: 0,
        stream: true,
        ignore_eos: true,
      };
      const stream = await openaiClient(served.server).chat.completions.create(params);
      const iterator = stream[Symbol.asyncIterator]();
      await iterator.next();
      return () => stream.controller.abort();
    });
  });

  it('when a non-streaming HTTP client closes its connection', async () => {
    await expectAbort(async () => {
      const request = httpRequest(`${served.server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      });
      request.on('error', () => {}); // the socket is destroyed on purpose
      request.end(JSON.stringify(LONG_REQUEST));
      return () => request.destroy();
    });
  });

  it('when a WebSocket closes with requests running', async () => {
    await expectAbort(async () => {
      const socket = new WebSocket(`${served.server.url.replace('http', 'ws')}/v1/ws`);
      await new Promise((resolve) => socket.once('open', resolve));
      socket.send(JSON.stringify({ type: 'response.create', id: 'r', endpoint: 'completions', request: LONG_REQUEST }));
      return () => socket.terminate();
    });
  });
});
