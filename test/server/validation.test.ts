// The error matrix through fastify.inject: every bad input is a 4xx in OpenAI's envelope that
// names the field; loading, overload, auth and internal faults get their statuses. The engine
// is a stand-in (nothing compiled): these are the HTTP side's rules.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { INTERNAL_ERROR_MESSAGE } from '../../server/openai/errors.ts';
import type { ServedModel } from '../../server/served-model.ts';
import { standInModel, type StandInModel } from '../helpers/stand-in-engine.ts';
import { badRequests } from './bad-requests.ts';
import { recordEngine, waitFor } from './helpers.ts';

const CHAT = '/v1/chat/completions';
const COMPLETIONS = '/v1/completions';
const user = [{ role: 'user', content: 'Hi' }];

describe('request validation and error statuses', () => {
  let test: StandInModel;
  let built: App;

  beforeAll(async () => {
    test = standInModel();
    built = await buildApp({ model: test.model });
  });

  afterAll(async () => {
    await built?.app.close();
    test?.remove();
  });

  it.each(badRequests)('400 for $name, naming $param', async ({ url, body, param, message }) => {
    const response = await built.app.inject({ method: 'POST', url, payload: body as object });
    expect(response.statusCode).toBe(400);
    const { error } = response.json<{ error: { message: string; type: string; param: string | null; code: string | null } }>();
    expect(error.type).toBe('invalid_request_error');
    expect(error.param).toBe(param);
    if (param !== null) expect(error.message).toContain(param.split(/[.[]/)[0]);
    if (message) expect(error.message).toMatch(message);
    expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
  });

  it('400 for malformed JSON', async () => {
    const response = await built.app.inject({
      method: 'POST',
      url: CHAT,
      headers: { 'content-type': 'application/json' },
      payload: '{"messages": [',
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.type).toBe('invalid_request_error');
  });

  it('clamps max_tokens and top_k however large, as the README promises', async () => {
    for (const extra of [{ max_tokens: 1e308 }, { max_completion_tokens: 2 ** 60 }, { top_k: 1e308, max_tokens: 2 }]) {
      const response = await built.app.inject({ method: 'POST', url: CHAT, payload: { messages: user, temperature: 0, ...extra } });
      expect(response.statusCode, JSON.stringify(extra)).toBe(200);
      const handed = test.engine.requests.at(-1);
      expect(handed?.maxTokens).toBeLessThanOrEqual(test.model.maxModelLen);
      expect(handed?.sampling.topK).toBeLessThanOrEqual(test.model.vocabSize);
    }
  });

  it('runs many choices without a listener-leak warning', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const response = await built.app.inject({ method: 'POST', url: CHAT, payload: { messages: user, max_tokens: 1, n: 16 } });
      expect(response.statusCode).toBe(200);
      expect(response.json().choices).toHaveLength(16);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).not.toContain('MaxListenersExceededWarning');
  });

  it("reads a text/plain body as JSON (what fetch() sends for a string body) from the server's own pages", async () => {
    const page = { origin: 'http://localhost', host: 'localhost' };
    const ok = await built.app.inject({
      method: 'POST',
      url: CHAT,
      headers: { 'content-type': 'text/plain;charset=UTF-8', ...page },
      payload: JSON.stringify({ messages: user, max_tokens: 1 }),
    });
    expect(ok.statusCode).toBe(200);
    const bad = await built.app.inject({
      method: 'POST',
      url: CHAT,
      headers: { 'content-type': 'text/plain', ...page },
      payload: 'not json',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.type).toBe('invalid_request_error');
    // Without an Origin it is refused (test/server/origins.test.ts has the other cases).
    const bare = await built.app.inject({
      method: 'POST',
      url: CHAT,
      headers: { 'content-type': 'text/plain' },
      payload: JSON.stringify({ messages: user, max_tokens: 1 }),
    });
    expect(bare.statusCode).toBe(415);
  });

  it('ignores unknown fields and treats null fields as absent', async () => {
    const body = { messages: user, max_tokens: 2, temperature: null, stop: null, seed: null, some_future_field: { x: 1 } };
    const response = await built.app.inject({ method: 'POST', url: CHAT, payload: body });
    expect(response.statusCode).toBe(200);
    expect(response.json().usage.completion_tokens).toBe(2);
  });

  it('404 for an unknown model and for an unknown route, in the envelope', async () => {
    const unknownModel = await built.app.inject({ method: 'POST', url: CHAT, payload: { model: 'gpt-4o', messages: user } });
    expect(unknownModel.statusCode).toBe(404);
    expect(unknownModel.json().error).toMatchObject({ param: 'model', code: 'model_not_found' });
    expect((await built.app.inject({ url: '/v1/models/gpt-4o' })).statusCode).toBe(404);
    const route = await built.app.inject({ method: 'POST', url: '/v1/nothing' });
    expect(route.statusCode).toBe(404);
    expect(route.json().error.message).toContain('/v1/nothing');
  });

  it('405 naming the allowed methods for a known path asked with another method', async () => {
    const response = await built.app.inject({ method: 'GET', url: `${CHAT}?x=1` });
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe('POST');
    expect(response.json().error).toMatchObject({ type: 'invalid_request_error', code: 'method_not_allowed' });
    expect((await built.app.inject({ method: 'DELETE', url: '/v1/models/tiny' })).statusCode).toBe(405);
  });

  it('answers URLs fastify refuses before routing, a plain GET of the WebSocket and malformed HTTP in the envelope', async () => {
    const envelope = (body: string) => JSON.parse(body) as { error: { message: string; type: string; param: null; code: string } };
    const badEncoding = await built.app.inject({ url: '/v1/models/%ff?api_key=secret' });
    expect(badEncoding.statusCode).toBe(400);
    expect(envelope(badEncoding.body).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_url' });
    expect(badEncoding.body).not.toContain('secret');
    const longSegment = await built.app.inject({ url: `/v1/models/${'a'.repeat(101)}` });
    expect(longSegment.statusCode).toBe(414);
    expect(envelope(longSegment.body).error.code).toBe('uri_too_long');
    const plainGet = await built.app.inject({ url: '/v1/ws' });
    expect(plainGet.statusCode).toBe(426);
    expect(envelope(plainGet.body).error.code).toBe('upgrade_required');
    // Node's parser refuses these before fastify sees a request: a real socket is needed.
    const address = await built.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = new URL(address);
    for (const raw of [
      'NOT HTTP AT ALL\r\n\r\n',
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    ]) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(raw));
        let text = '';
        socket.on('data', (chunk) => (text += chunk));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(envelope(answer.slice(answer.indexOf('\r\n\r\n') + 4)).error).toMatchObject({
        type: 'invalid_request_error',
        code: 'malformed_request',
      });
    }
  });

  it('lists the served model and answers tokenize/detokenize', async () => {
    const models = await built.app.inject({ url: '/v1/models' });
    expect(models.json()).toMatchObject({
      object: 'list',
      data: [{ id: 'tiny-moe', object: 'model', created: test.model.created, owned_by: 'moe-server', max_model_len: 512 }],
    });
    // The family fields: DeepSeekMoE tiny preset, 8 routed experts top-2 and 2 shared of 32.
    expect(models.json().data[0]).toMatchObject({
      family: 'deepseek',
      num_layers: 3,
      moe_layers: 2,
      num_routed_experts: 8,
      num_experts_per_token: 2,
      shared_expert_intermediate_size: 64,
      routing: { scoring: 'softmax', top_k: 2, renormalize: false, groups: null },
      attention: 'grouped-query',
    });
    expect((await built.app.inject({ url: '/v1/models/tiny-moe' })).json().id).toBe('tiny-moe');
    const tokenized = (await built.app.inject({ method: 'POST', url: '/tokenize', payload: { prompt: 'Hello world' } })).json();
    expect(tokenized).toMatchObject({ count: tokenized.tokens.length, max_model_len: 512 });
    expect(tokenized.tokens[0]).toBe(1);
    const plain = (
      await built.app.inject({ method: 'POST', url: '/tokenize', payload: { prompt: 'Hello world', add_special_tokens: false } })
    ).json();
    expect(plain.tokens).toEqual(tokenized.tokens.slice(1));
    const text = (await built.app.inject({ method: 'POST', url: '/detokenize', payload: { tokens: tokenized.tokens } })).json();
    expect(text).toEqual({ prompt: 'Hello world' });
  });

  it('413 for a body over --max-body-bytes', async () => {
    const small = await buildApp({ model: test.model, maxBodyBytes: 2048 });
    const response = await small.app.inject({
      method: 'POST',
      url: CHAT,
      payload: { messages: [{ role: 'user', content: 'x'.repeat(4000) }] },
    });
    expect(response.statusCode).toBe(413);
    expect(response.json().error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
    await small.app.close();
  });

  it('401 without a configured API key; any configured key works; /health stays open', async () => {
    const keyed = await buildApp({ model: test.model, apiKeys: ['key-one', 'key-two'] });
    const post = (headers: Record<string, string>) =>
      keyed.app.inject({ method: 'POST', url: CHAT, headers, payload: { messages: user, max_tokens: 1 } });
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'key-one' }] as Array<Record<string, string>>) {
      const response = await post(headers);
      expect(response.statusCode).toBe(401);
      expect(response.json().error).toMatchObject({ type: 'authentication_error', code: 'invalid_api_key' });
    }
    expect((await post({ authorization: 'Bearer key-two' })).statusCode).toBe(200);
    expect((await keyed.app.inject({ url: '/v1/models' })).statusCode).toBe(401);
    expect((await keyed.app.inject({ url: '/health' })).statusCode).toBe(200);
    await keyed.app.close();
  });

  it('429 with Retry-After once --max-queue requests are admitted, and admits again after', async () => {
    const busy = await buildApp({ model: test.model, maxQueue: 1 });
    const long = busy.app.inject({ method: 'POST', url: COMPLETIONS, payload: { prompt: 'a', max_tokens: 200, ignore_eos: true } });
    await waitFor(() => busy.gate.size === 1);
    const refused = await busy.app.inject({ method: 'POST', url: CHAT, payload: { messages: user, max_tokens: 1 } });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json().error).toMatchObject({ code: 'queue_full' });
    expect((await long).statusCode).toBe(200);
    await waitFor(() => busy.gate.size === 0);
    expect((await busy.app.inject({ method: 'POST', url: CHAT, payload: { messages: user, max_tokens: 1 } })).statusCode).toBe(200);
    await busy.app.close();
  });

  it('503 with Retry-After while the model loads, and after it failed to load', async () => {
    const loading = await buildApp({ model: new Promise<ServedModel>(() => {}) });
    const health = await loading.app.inject({ url: '/health' });
    expect(health.statusCode).toBe(503);
    expect(health.headers['retry-after']).toBeDefined();
    expect(health.json().error.code).toBe('model_loading');
    expect((await loading.app.inject({ method: 'POST', url: CHAT, payload: { messages: user } })).statusCode).toBe(503);
    await loading.app.close();

    const failed = await buildApp({ model: Promise.reject(new Error('/secret/path: config.json is missing')) });
    await new Promise((resolve) => setImmediate(resolve));
    const response = await failed.app.inject({ url: '/health' });
    expect(response.statusCode).toBe(503);
    expect(response.json().error.code).toBe('model_load_failed');
    expect(response.body).not.toContain('/secret/path');
    await failed.app.close();
    const healthy = (await built.app.inject({ url: '/health' })).json();
    expect(healthy).toMatchObject({ status: 'ok', model: 'tiny-moe', engine: { running: 0, waiting: 0, preemptions: 0 } });
    expect(healthy.engine.kv_cache.total_blocks).toBeGreaterThan(0);
    expect(healthy.engine.kv_cache.usage).toBe(0);
  });

  it('500 with a generic message for an internal fault, leaking nothing', async () => {
    const faulty = await buildApp({ model: test.model });
    faulty.app.get('/boom', async () => {
      throw new Error('secret internals at /srv/app.ts:12');
    });
    const response = await faulty.app.inject({ url: '/boom' });
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { message: INTERNAL_ERROR_MESSAGE, type: 'server_error', param: null, code: null } });
    await faulty.app.close();
  });

  // Last: it stops this file's engine. (test/engine/engine-client.test.ts checks that a real
  // worker's exit ends its requests the same way.)
  it('ends a stream with one error event when the engine dies mid-stream, then answers 503', async () => {
    const recorder = recordEngine(test.model);
    const streaming = built.app.inject({
      method: 'POST',
      url: COMPLETIONS,
      payload: { prompt: 'a', max_tokens: 400, ignore_eos: true, stream: true },
    });
    await waitFor(() => recorder.tokens() >= 3);
    test.engine.crash();
    const events = (await streaming).body.split('\n\n').filter(Boolean);
    recorder.stop();
    expect(events.length).toBeGreaterThan(1);
    expect(JSON.parse(events[0].slice('data: '.length)).object).toBe('text_completion');
    const last = events[events.length - 1];
    expect(JSON.parse(last.slice('data: '.length))).toEqual({
      error: { message: INTERNAL_ERROR_MESSAGE, type: 'server_error', param: null, code: null },
    });
    const health = await built.app.inject({ url: '/health' });
    expect(health.statusCode).toBe(503);
    expect(health.json().error.code).toBe('engine_stopped');
    expect((await built.app.inject({ method: 'POST', url: CHAT, payload: { messages: user } })).statusCode).toBe(503);
  });
});
