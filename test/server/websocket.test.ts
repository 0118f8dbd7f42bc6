// GET /v1/ws with a real `ws` client against a real listening server: concurrent requests on
// one socket, cancellation, errors as events on a socket that stays usable, authentication.
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { listen, MODEL, openaiClient, serveTinyModel } from './helpers.ts';

interface ServerEvent {
  type: string;
  id: string | null;
  index?: number;
  delta?: string;
  status?: string;
  logprobs?: unknown;
  response?: {
    choices: Array<{ index: number; text?: string; message?: { content: string }; finish_reason: string | null }>;
    usage: { completion_tokens: number };
  };
  error?: { message: string; type: string; param: string | null; code: string | null };
}

class WsTestClient {
  readonly events: ServerEvent[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.events.push(JSON.parse(String(data)) as ServerEvent);
      for (const wake of this.waiters) wake();
    });
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<WsTestClient> {
    const socket = new WebSocket(url, { headers });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new WsTestClient(socket)));
      socket.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  async waitFor(match: (event: ServerEvent) => boolean): Promise<ServerEvent> {
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** A request's last event: response.done or error. */
  end(id: string | null): Promise<ServerEvent> {
    return this.waitFor((e) => e.id === id && (e.type === 'response.done' || e.type === 'error'));
  }

  deltas(id: string, index = 0): string {
    return this.events
      .filter((e) => e.id === id && e.type === 'response.output_text.delta' && e.index === index)
      .map((e) => e.delta)
      .join('');
  }
}

const messages = [{ role: 'user', content: 'Tell me a story.' }];

describe('WebSocket streaming', () => {
  const served = serveTinyModel();
  const wsUrl = (): string => `${served.server.url.replace('http', 'ws')}/v1/ws`;

  it('runs several requests at once on one socket, each event tagged with its id', async () => {
    const ws = await WsTestClient.open(wsUrl());
    ws.send({ type: 'response.create', id: 'chat-1', request: { messages, max_tokens: 8, temperature: 0 } });
    ws.send({
      type: 'response.create',
      id: 'text-2',
      endpoint: 'completions',
      request: { prompt: 'Once upon', max_tokens: 6, temperature: 0, logprobs: 1 },
    });
    ws.send({ type: 'response.create', id: 'many-3', request: { messages, max_tokens: 5, n: 2, seed: 3 } });
    const [chat, text, many] = await Promise.all(['chat-1', 'text-2', 'many-3'].map((id) => ws.end(id)));

    expect(chat).toMatchObject({ type: 'response.done', status: 'completed' });
    expect(chat.response?.usage.completion_tokens).toBe(8);
    expect(ws.deltas('chat-1')).toBe(chat.response?.choices[0].message?.content);
    const created = ws.events.find((e) => e.id === 'chat-1' && e.type === 'response.created');
    expect(ws.events.indexOf(created as ServerEvent)).toBeLessThan(
      ws.events.findIndex((e) => e.id === 'chat-1' && e.type === 'response.output_text.delta'),
    );

    expect(ws.deltas('text-2')).toBe(text.response?.choices[0].text);
    const textDelta = ws.events.find((e) => e.id === 'text-2' && e.type === 'response.output_text.delta');
    expect(textDelta?.logprobs).toMatchObject({ tokens: expect.any(Array), token_logprobs: expect.any(Array) });

    expect(many.response?.choices).toHaveLength(2);
    expect(ws.deltas('many-3', 1)).toBe(many.response?.choices[1].message?.content);

    // The same request over HTTP gives the same greedy text.
    const http = await openaiClient(served.server).chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Tell me a story.' }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(http.choices[0].message.content).toBe(ws.deltas('chat-1'));
    ws.socket.close();
  });

  it('cancels one request and keeps the others and the socket going', async () => {
    const ws = await WsTestClient.open(wsUrl());
    ws.send({ type: 'response.create', id: 'long', endpoint: 'completions', request: { prompt: 'a', max_tokens: 400, ignore_eos: true } });
    ws.send({ type: 'response.create', id: 'short', endpoint: 'completions', request: { prompt: 'b', max_tokens: 30, ignore_eos: true } });
    await ws.waitFor((e) => e.id === 'long' && e.type === 'response.output_text.delta');
    ws.send({ type: 'response.cancel', id: 'long' });
    const cancelled = await ws.end('long');
    expect(cancelled).toMatchObject({ type: 'response.done', status: 'cancelled' });
    expect(cancelled.response?.usage.completion_tokens).toBeLessThan(400);
    expect(cancelled.response?.choices[0].finish_reason).toBeNull();
    const short = await ws.end('short');
    expect(short).toMatchObject({ status: 'completed' });
    expect(short.response?.usage.completion_tokens).toBe(30);
    // The id is free again once its request ended.
    ws.send({ type: 'response.create', id: 'long', endpoint: 'completions', request: { prompt: 'c', max_tokens: 2 } });
    await ws.waitFor((e) => e.id === 'long' && e.status === 'completed');
    ws.socket.close();
  });

  it('answers malformed messages with error events and stays usable', async () => {
    const ws = await WsTestClient.open(wsUrl());
    ws.send('this is not json');
    expect((await ws.end(null)).error).toMatchObject({ type: 'invalid_request_error', message: expect.stringMatching(/not valid JSON/) });
    ws.send({ type: 'response.create', request: { messages } });
    expect((await ws.waitFor((e) => e.type === 'error' && /'id'/.test(e.error?.message ?? ''))).error?.param).toBe('id');
    ws.send({ type: 'response.explode', id: 'x1' });
    expect((await ws.end('x1')).error?.param).toBe('type');
    ws.send({ type: 'response.create', id: 'x2', request: { messages, temperature: 5 } });
    expect((await ws.end('x2')).error).toMatchObject({ param: 'temperature', message: expect.stringMatching(/maximum of 2/) });
    ws.send({ type: 'response.create', id: 'x3', request: { model: 'other', messages } });
    expect((await ws.end('x3')).error?.code).toBe('model_not_found');
    ws.send({ type: 'response.cancel', id: 'nothing-here' });
    expect((await ws.end('nothing-here')).error?.param).toBe('id');
    ws.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    await ws.waitFor((e) => e.type === 'error' && /binary/.test(e.error?.message ?? ''));
    ws.send({ type: 'response.create', id: 'dup', endpoint: 'completions', request: { prompt: 'a', max_tokens: 200, ignore_eos: true } });
    ws.send({ type: 'response.create', id: 'dup', endpoint: 'completions', request: { prompt: 'a', max_tokens: 1 } });
    expect((await ws.waitFor((e) => e.id === 'dup' && e.type === 'error')).error?.message).toMatch(/already running/);
    ws.send({ type: 'response.cancel', id: 'dup' });
    expect((await ws.waitFor((e) => e.id === 'dup' && e.type === 'response.done')).status).toBe('cancelled');

    ws.send({ type: 'response.create', id: 'ok', request: { messages, max_tokens: 3 } });
    expect(await ws.end('ok')).toMatchObject({ type: 'response.done', status: 'completed' });
    expect(ws.socket.readyState).toBe(WebSocket.OPEN);
    ws.socket.close();
  });

  it('reports a full queue as an error event', async () => {
    const busy = await listen({ model: served.test.model, maxQueue: 1 });
    const ws = await WsTestClient.open(`${busy.url.replace('http', 'ws')}/v1/ws`);
    ws.send({ type: 'response.create', id: 'first', endpoint: 'completions', request: { prompt: 'a', max_tokens: 300, ignore_eos: true } });
    await ws.waitFor((e) => e.id === 'first' && e.type === 'response.created');
    ws.send({ type: 'response.create', id: 'second', request: { messages, max_tokens: 1 } });
    expect((await ws.end('second')).error).toMatchObject({ code: 'queue_full', type: 'rate_limit_error' });
    ws.send({ type: 'response.cancel', id: 'first' });
    await ws.end('first');
    ws.socket.close();
    await busy.close();
  });

  it('requires an API key when keys are configured: header or api_key query', async () => {
    const keyed = await listen({ model: served.test.model, apiKeys: ['sesame'] });
    const url = `${keyed.url.replace('http', 'ws')}/v1/ws`;
    await expect(WsTestClient.open(url)).rejects.toThrow(/401/);
    await expect(WsTestClient.open(`${url}?api_key=wrong`)).rejects.toThrow(/401/);
    for (const ws of [await WsTestClient.open(url, { authorization: 'Bearer sesame' }), await WsTestClient.open(`${url}?api_key=sesame`)]) {
      ws.send({ type: 'response.create', id: 'k', request: { messages, max_tokens: 1 } });
      expect((await ws.end('k')).type).toBe('response.done');
      ws.socket.close();
    }
    await keyed.close();
  });
});
