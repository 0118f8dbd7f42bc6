// The engine through its public face: a real EngineClient running the model in a real worker
// thread on ONNX Runtime, over a tiny synthetic checkpoint. One client serves the whole file.
import { performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationEvent } from '../../server/engine/api.ts';
import type { EngineClient } from '../../server/engine/client.ts';
import type { SequenceEvent } from '../../server/engine/protocol.ts';
import { TextTokenizer } from '../../server/tokenizer/tokenizer.ts';
import {
  type Collected,
  collect,
  LOGIT_SLACK,
  makeRequest,
  massAbove,
  rankOf,
  runnerGreedy,
  runnerLogitsAll,
  startTinyEngine,
  summarize,
  tapWorker,
  tokensPostedAfter,
} from '../helpers/engine-client.ts';
import { openRunner, testTokens, type OpenedRunner, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

describe('EngineClient over a tiny model', () => {
  let model: TinyModel;
  let client: EngineClient;
  let opened: OpenedRunner;
  let tokenizer: TextTokenizer;

  beforeAll(async () => {
    model = writeTinyModel({}, 21);
    client = await startTinyEngine(model);
    opened = await openRunner(model, 'fp32'); // reuses the worker's compiled graphs
    tokenizer = TextTokenizer.load(model.dir);
  });
  afterAll(async () => {
    await client?.close();
    await opened?.release();
    model?.remove();
  });

  /** The logits each of `tokens` was drawn from, continuing `prompt`. */
  async function logitsBefore(prompt: number[], tokens: number[]): Promise<Float32Array[]> {
    const rows = await runnerLogitsAll(opened, [...prompt, ...tokens]);
    return tokens.map((_, i) => rows[prompt.length - 1 + i]);
  }

  describe('greedy', () => {
    it('gives the same tokens twice, equal to a direct ModelRunner greedy loop', async () => {
      const request = makeRequest('The quick brown fox', { maxTokens: 24 });
      const first = await collect(client, request);
      const second = await collect(client, request);
      expect(first.tokens).toHaveLength(24);
      expect(second.tokens).toEqual(first.tokens);
      expect(second.text).toBe(first.text);
      expect(first.tokens).toEqual(await runnerGreedy(opened, tokenizer.encode('The quick brown fox'), 24));
    });
  });

  describe('sampling', () => {
    it('repeats itself for the same seed and differs for other seeds', async () => {
      const sampled = (seed: number) => collect(client, makeRequest('Hello', { maxTokens: 24, seed, sampling: { temperature: 1 } }));
      const [a, again, b, c] = [await sampled(1), await sampled(1), await sampled(2), await sampled(3)];
      expect(a.tokens).toHaveLength(24);
      expect(again.tokens).toEqual(a.tokens);
      expect(b.tokens).not.toEqual(a.tokens);
      expect(c.tokens).not.toEqual(a.tokens);
      expect(c.tokens).not.toEqual(b.tokens);
    });

    it('with top-k picks only among the k most likely tokens', async () => {
      const prompt = tokenizer.encode('Once upon a time');
      const k = 3;
      const request = (topK: number) => makeRequest(prompt, { maxTokens: 32, seed: 5, sampling: { temperature: 2, topK } });
      const restricted = await collect(client, request(k));
      const free = await collect(client, request(0));
      const restrictedRows = await logitsBefore(prompt, restricted.tokens);
      const freeRows = await logitsBefore(prompt, free.tokens);
      expect(restricted.tokens.every((t, i) => rankOf(restrictedRows[i], t, -LOGIT_SLACK) < k)).toBe(true);
      // Without top-k this temperature strays outside the top k, so the check above has teeth.
      expect(free.tokens.some((t, i) => rankOf(freeRows[i], t, LOGIT_SLACK) >= k)).toBe(true);
    });

    it('with top-p picks only from the nucleus', async () => {
      const prompt = tokenizer.encode('In a hole in the ground');
      const topP = 0.5;
      const temperature = 1.5;
      const request = (p: number) => makeRequest(prompt, { maxTokens: 32, seed: 9, sampling: { temperature, topP: p } });
      const restricted = await collect(client, request(topP));
      const free = await collect(client, request(1));
      const restrictedRows = await logitsBefore(prompt, restricted.tokens);
      const freeRows = await logitsBefore(prompt, free.tokens);
      expect(Math.max(...restricted.tokens.map((t, i) => massAbove(restrictedRows[i], t, temperature)))).toBeLessThan(topP + 1e-3);
      expect(Math.max(...free.tokens.map((t, i) => massAbove(freeRows[i], t, temperature)))).toBeGreaterThan(topP);
    });
  });

  describe('finishing', () => {
    it('ends with finish length after exactly maxTokens tokens', async () => {
      const result = await collect(client, makeRequest('Count to seven', { maxTokens: 7 }));
      expect(result.tokens).toHaveLength(7);
      expect(result.finished?.finishReason).toBe('length');
      expect(result.finished?.completionTokens).toBe(7);
    });

    it('stops at a stop token id greedy decoding produces, leaving its text out; ignoreEos runs on', async () => {
      const prompt = tokenizer.encode('Stop right there');
      const full = await collect(client, makeRequest(prompt, { maxTokens: 12 }));
      // A later token that does not occur before it and has text of its own.
      const at = full.tokens.findIndex((t, i) => i >= 2 && !full.tokens.slice(0, i).includes(t) && tokenizer.decode([t]).trim() !== '');
      expect(at).toBeGreaterThanOrEqual(2);
      const stopToken = full.tokens[at];

      const stopped = await collect(client, makeRequest(prompt, { maxTokens: 12, stopTokenIds: [stopToken] }));
      expect(stopped.finished?.finishReason).toBe('stop');
      expect(stopped.tokens).toEqual(full.tokens.slice(0, at + 1));
      expect(stopped.finished?.completionTokens).toBe(at + 1);
      const before = tokenizer.decode([...prompt, ...full.tokens.slice(0, at)]).slice(tokenizer.decode(prompt).length);
      expect(stopped.text).toBe(before);
      expect(full.text.startsWith(before)).toBe(true);
      expect(full.text.length).toBeGreaterThan(before.length);

      const ignoring = await collect(client, makeRequest(prompt, { maxTokens: 12, stopTokenIds: [stopToken], ignoreEos: true }));
      expect(ignoring.finished?.finishReason).toBe('length');
      expect(ignoring.tokens).toEqual(full.tokens);
    });

    it('gives a prompt one token short of the context exactly one token', async () => {
      const prompt = testTokens(client.info.maxModelLen - 1, 3);
      const result = await collect(client, makeRequest(prompt, { maxTokens: 10 }));
      expect(result.tokens).toHaveLength(1);
      expect(result.finished?.finishReason).toBe('length');
    });
  });

  it('reports usage: prompt tokens as the tokenizer counts them (with BOS), completion tokens as token events', async () => {
    const text = 'Usage counts every token, including BOS.';
    const ids = tokenizer.encode(text);
    expect(ids[0]).toBe(tokenizer.bosTokenId);
    const result = await collect(client, makeRequest(text, { maxTokens: 9 }));
    expect(result.acceptedPromptTokens).toBe(ids.length);
    expect(result.finished?.promptTokens).toBe(ids.length);
    expect(result.finished?.completionTokens).toBe(result.tokens.length);
    expect(result.tokens).toHaveLength(9);
  });

  it('serves six concurrent requests in shared steps, each getting exactly its solo tokens', async () => {
    const requests = Array.from({ length: 6 }, (_, i) => makeRequest(testTokens(2 + 9 * i, 40 + i), { maxTokens: 16 + 5 * i }));
    const solo: Collected[] = [];
    for (const request of requests) solo.push(await collect(client, request));
    const tap = tapWorker(client);
    const together = await Promise.all(requests.map((request) => collect(client, request)));
    tap.stop();
    together.forEach((result, i) => {
      expect(result.tokens).toEqual(solo[i].tokens);
      expect(result.finished?.finishReason).toBe('length');
    });
    const seqsPerStep = tap.steps().map((events) => new Set(events.filter((e) => e.event.type === 'token').map((e) => e.seqId)).size);
    expect(Math.max(...seqsPerStep)).toBe(6);
  });

  describe('cancellation', () => {
    // The consumer cannot count "tokens after abort" exactly: under CPU contention the worker may
    // be a step or two ahead of what the main thread has read (2 measured with two busy-loop
    // processes on 2 cores). So each test submits a marker request right behind the cancel: the
    // worker takes messages in order, and nothing of the cancelled sequence may follow the
    // marker's acceptance.
    const submitMarker = (): Promise<Collected> => collect(client, makeRequest('Marker', { maxTokens: 2 }));
    const finishedOf = (e: SequenceEvent): Extract<GenerationEvent, { type: 'finished' }> | null =>
      e.event.type === 'finished' ? e.event : null;

    it('aborting the signal mid-generation ends with finish abort and no token after the worker takes the cancel in', async () => {
      const tap = tapWorker(client);
      const controller = new AbortController();
      const events: GenerationEvent[] = [];
      let marker: Promise<Collected> | undefined;
      for await (const event of client.generate(makeRequest('Once upon a time', { maxTokens: 400 }), controller.signal)) {
        events.push(event);
        if (event.type === 'token' && !marker && summarize(events).tokens.length === 5) {
          controller.abort();
          marker = submitMarker();
        }
      }
      const markerResult = await marker;
      tap.stop();
      const [victimId, markerId] = tap.acceptedIds();
      const victim = summarize(events);
      expect(victim.finished?.finishReason).toBe('abort');
      expect(victim.finished?.completionTokens).toBe(victim.tokens.length);
      expect(tokensPostedAfter(tap, markerId, victimId)).toBe(0);
      expect(markerResult?.finished?.finishReason).toBe('length');
    });

    it('a signal aborted before the request is made ends it with finish abort', async () => {
      const tap = tapWorker(client);
      const controller = new AbortController();
      controller.abort();
      const [victim, marker] = await Promise.all([
        collect(client, makeRequest('Never mind', { maxTokens: 200 }), controller.signal),
        submitMarker(),
      ]);
      tap.stop();
      const [victimId, markerId] = tap.acceptedIds();
      expect(victim.finished?.finishReason).toBe('abort');
      expect(tokensPostedAfter(tap, markerId, victimId)).toBe(0);
      expect(marker.finished?.finishReason).toBe('length');
    });

    it('breaking out of the loop cancels the sequence in the worker', async () => {
      const tap = tapWorker(client);
      let received = 0;
      for await (const event of client.generate(makeRequest('Break early', { maxTokens: 400 }))) {
        if (event.type === 'token' && ++received === 3) break;
      }
      const marker = await submitMarker();
      tap.stop();
      const [victimId, markerId] = tap.acceptedIds();
      // Nobody listens to the broken-off request any more, but the worker still reports its end.
      const ended = tap
        .steps()
        .flat()
        .filter((e) => e.seqId === victimId)
        .map(finishedOf)
        .find((e) => e !== null);
      expect(ended?.finishReason).toBe('abort');
      expect(tokensPostedAfter(tap, markerId, victimId)).toBe(0);
      const victimTokens = tap
        .steps()
        .flat()
        .filter((e) => e.event.type === 'token' && e.seqId === victimId);
      expect(victimTokens).toHaveLength(ended?.completionTokens ?? -1);
      expect(marker.finished?.finishReason).toBe('length');
      expect(marker.tokens).toHaveLength(2);
    });
  });

  describe('invalid requests', () => {
    it('are invalid_request errors naming the problem, and the client keeps working', async () => {
      const cases: Array<[number[], RegExp]> = [
        [[], /empty/],
        [[1, 32000], /outside the vocabulary/],
        [[1, -1], /outside the vocabulary/],
        [[1, 2.5], /outside the vocabulary/],
        [testTokens(client.info.maxModelLen, 9), /context/],
      ];
      for (const [prompt, message] of cases) {
        const result = await collect(client, makeRequest(prompt));
        expect(result.events).toHaveLength(1);
        expect(result.error?.kind).toBe('invalid_request');
        expect(result.error?.message).toMatch(message);
      }
      const after = await collect(client, makeRequest('Still working', { maxTokens: 4 }));
      expect(after.finished?.finishReason).toBe('length');
      expect(after.tokens).toHaveLength(4);
    });

    it('include a maxTokens below 1 or not an integer, without disturbing requests in flight', async () => {
      const running = collect(client, makeRequest('Running alongside', { maxTokens: 40 }));
      for (const maxTokens of [0, -3, 1.5, Number.NaN]) {
        const result = await collect(client, makeRequest('Bad length', { maxTokens }));
        expect({ maxTokens, kind: result.error?.kind }).toEqual({ maxTokens, kind: 'invalid_request' });
        expect(result.tokens).toEqual([]);
      }
      const alongside = await running;
      expect(alongside.finished?.finishReason).toBe('length');
      expect(alongside.tokens).toHaveLength(40);
    });

    it('include a logit_bias token outside the vocabulary, without failing requests in flight', async () => {
      const running = collect(client, makeRequest('Running alongside', { maxTokens: 40 }));
      const result = await collect(client, makeRequest('Bad bias', { sampling: { logitBias: new Map([[32000, 5]]) } }));
      expect(result.error?.kind).toBe('invalid_request');
      const alongside = await running;
      expect(alongside.error).toBeNull();
      expect(alongside.tokens).toHaveLength(40);
    });

    it('treat an empty text prompt as BOS alone, which is served', async () => {
      const result = await collect(client, makeRequest('', { maxTokens: 3 }));
      expect(result.acceptedPromptTokens).toBe(1);
      expect(result.tokens).toHaveLength(3);
    });
  });

  it('keeps the main thread free while the worker generates', async () => {
    const intervalMs = 5;
    let ticks = 0;
    const probe = setInterval(() => ticks++, intervalMs);
    const utilizationAtStart = performance.eventLoopUtilization();
    const started = performance.now();
    const result = await collect(client, makeRequest('A long story', { maxTokens: 480 }));
    const elapsedMs = performance.now() - started;
    const utilization = performance.eventLoopUtilization(utilizationAtStart).utilization;
    clearInterval(probe);

    expect(result.tokens).toHaveLength(480);
    // The probe really ran throughout (it would stall if the model ran on this thread between turns).
    expect(ticks).toBeGreaterThanOrEqual(Math.max(20, elapsedMs / intervalMs / 4));
    // Event-loop delay cannot tell (ONNX Runtime's run yields between graph calls, so a model
    // on this thread also keeps it low) and is a timing that a loaded machine breaks. The
    // share of time the main thread is busy can: it was 1.0 with the model here and under 0.1
    // with it in the worker.
    expect(utilization).toBeLessThan(0.5);
  });
});

describe('EngineClient when its worker dies', () => {
  it('ends the requests in flight with an internal error, then fails every new one at once', async () => {
    const model = writeTinyModel({}, 22);
    const client = await startTinyEngine(model);
    try {
      const events: GenerationEvent[] = [];
      const running = (async () => {
        for await (const event of client.generate(makeRequest('Once upon a time', { maxTokens: 400 }))) {
          events.push(event);
          if (event.type === 'token' && events.length === 4) {
            // The worker stops without close() (which is a shutdown), as a crash would. Not
            // terminate(): killing the thread inside ONNX Runtime aborts the process.
            const worker = Reflect.get(client, 'worker') as Worker;
            worker.postMessage({ type: 'shutdown' });
          }
        }
      })();
      await running;
      expect(events.at(-1)).toMatchObject({ type: 'error', kind: 'internal' });
      expect(client.isRunning).toBe(false);
      const later = await collect(client, makeRequest('Anyone there?'));
      expect(later.error).toMatchObject({ kind: 'internal', message: expect.stringContaining('exited') });
    } finally {
      await client.close();
      model.remove();
    }
  });
});
