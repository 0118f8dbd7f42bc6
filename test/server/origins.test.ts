// Browser-origin safety (server/origins.ts) through app.inject and a real WebSocket
// handshake: foreign pages get 403, the server's own pages and clients without an Origin are
// served, listed origins get CORS headers and preflight answers, a text/plain body is read
// only from an allowed origin. The model stays loading: the guard answers before it matters
// (an accepted generation request gets the loading 503, a refused one never gets that far).
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { buildApp, type App, type AppOptions } from '../../server/app.ts';
import type { ServedModel } from '../../server/served-model.ts';

const CHAT = '/v1/chat/completions';
const HOST = '127.0.0.1:8000';
const OWN = `http://${HOST}`;
const LISTED = 'https://app.example';
const FOREIGN = 'https://evil.example';
const body = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 });

function loadingApp(options: Omit<AppOptions, 'model'> = {}): Promise<App> {
  return buildApp({ ...options, model: new Promise<ServedModel>(() => {}) });
}

describe('requests from browser origins', () => {
  let built: App;
  beforeAll(async () => {
    built = await loadingApp({ allowedOrigins: [LISTED] });
  });
  afterAll(async () => built.app.close());

  const get = (url: string, headers: Record<string, string>) =>
    built.app.inject({ method: 'GET', url, headers: { host: HOST, ...headers } });
  const post = (contentType: string, headers: Record<string, string>) =>
    built.app.inject({ method: 'POST', url: CHAT, headers: { host: HOST, 'content-type': contentType, ...headers }, payload: body });

  it('serves clients that send no Origin as before', async () => {
    expect((await get('/metrics', {})).statusCode).toBe(200);
    const chat = await post('application/json', {});
    expect(chat.json().error.code).toBe('model_loading');
    expect(chat.headers['access-control-allow-origin']).toBeUndefined();
  });

  it("serves the server's own pages (Origin = the Host it was reached at), without CORS headers", async () => {
    const metrics = await get('/metrics', { origin: OWN });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['access-control-allow-origin']).toBeUndefined();
    expect((await get('/dashboard', { origin: OWN })).statusCode).toBe(200);
    expect((await post('application/json', { origin: OWN })).json().error.code).toBe('model_loading');
  });

  it('refuses any other origin with 403 in the error envelope, GET and POST alike', async () => {
    for (const origin of [FOREIGN, 'http://127.0.0.1:3000', 'https://127.0.0.1:8001', 'null', 'not a url']) {
      for (const response of [
        await get('/metrics', { origin }),
        await post('application/json', { origin }),
        await get('/health', { origin }),
      ]) {
        expect(response.statusCode, origin).toBe(403);
        expect(response.json()).toEqual({
          error: {
            message: expect.stringContaining('--allowed-origins'),
            type: 'invalid_request_error',
            param: null,
            code: 'origin_not_allowed',
          },
        });
        expect(response.headers['access-control-allow-origin']).toBeUndefined();
      }
    }
  });

  it('serves a listed origin with CORS headers naming it', async () => {
    const metrics = await get('/metrics', { origin: LISTED });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['access-control-allow-origin']).toBe(LISTED);
    expect(metrics.headers.vary).toContain('Origin');
    const chat = await post('application/json', { origin: LISTED });
    expect(chat.statusCode).toBe(503); // loading: an error the page can read
    expect(chat.headers['access-control-allow-origin']).toBe(LISTED);
    expect(chat.headers['access-control-expose-headers']).toBe('retry-after');
  });

  it('answers the CORS preflight of a listed origin, and refuses a foreign one', async () => {
    const preflight = (origin: string) =>
      built.app.inject({
        method: 'OPTIONS',
        url: CHAT,
        headers: {
          host: HOST,
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type,x-stainless-os',
        },
      });
    const allowed = await preflight(LISTED);
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers).toMatchObject({
      'access-control-allow-origin': LISTED,
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'authorization,content-type,x-stainless-os',
      'access-control-max-age': '600',
    });
    const refused = await preflight(FOREIGN);
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();
    // An OPTIONS that is no preflight is what it was: a 405 naming the methods.
    expect((await built.app.inject({ method: 'OPTIONS', url: CHAT, headers: { host: HOST } })).statusCode).toBe(405);
  });

  it('reads a text/plain body only from an allowed origin; 415 otherwise', async () => {
    for (const origin of [OWN, LISTED]) {
      expect((await post('text/plain;charset=UTF-8', { origin })).json().error.code, origin).toBe('model_loading');
    }
    const bare = await post('text/plain;charset=UTF-8', {});
    expect(bare.statusCode).toBe(415);
    expect(bare.json().error).toMatchObject({
      type: 'invalid_request_error',
      code: 'unsupported_media_type',
      message: expect.stringContaining('application/json'),
    });
    expect((await post('text/plain', { origin: FOREIGN })).statusCode).toBe(403);
  });

  it('a foreign origin is refused before authentication; a preflight needs no key', async () => {
    const keyed = await loadingApp({ apiKeys: ['sesame'], allowedOrigins: [LISTED] });
    try {
      const foreign = await keyed.app.inject({ url: '/v1/models', headers: { host: HOST, origin: FOREIGN } });
      expect(foreign.statusCode).toBe(403);
      const preflight = await keyed.app.inject({
        method: 'OPTIONS',
        url: CHAT,
        headers: { host: HOST, origin: LISTED, 'access-control-request-method': 'POST' },
      });
      expect(preflight.statusCode).toBe(204);
      const noKey = await keyed.app.inject({ url: '/v1/models', headers: { host: HOST, origin: LISTED } });
      expect(noKey.statusCode).toBe(401);
      expect(noKey.headers['access-control-allow-origin']).toBe(LISTED);
    } finally {
      await keyed.app.close();
    }
  });

  it('* allows every origin', async () => {
    const open = await loadingApp({ allowedOrigins: ['*'] });
    try {
      const response = await open.app.inject({ url: '/metrics', headers: { host: HOST, origin: FOREIGN } });
      expect(response.statusCode).toBe(200);
      expect(response.headers['access-control-allow-origin']).toBe(FOREIGN);
    } finally {
      await open.app.close();
    }
  });
});

describe('WebSocket handshakes from browser origins', () => {
  let built: App;
  let url = '';
  beforeAll(async () => {
    built = await loadingApp({ allowedOrigins: [LISTED] });
    await built.app.listen({ port: 0, host: '127.0.0.1' });
    url = `ws://127.0.0.1:${(built.app.server.address() as AddressInfo).port}/v1/ws`;
  });
  afterAll(async () => {
    built.app.server.closeAllConnections();
    await built.app.close();
  });

  /** The handshake's HTTP status: 101 when the socket opened. */
  const handshake = (origin: string | undefined): Promise<number> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url, origin === undefined ? {} : { origin });
      socket.once('upgrade', (response) => resolve(response.statusCode ?? 0));
      socket.once('unexpected-response', (_request, response) => {
        resolve(response.statusCode ?? 0);
        socket.terminate();
      });
      socket.once('open', () => socket.close());
      socket.once('error', (err) => reject(err));
    });

  it('refuses a foreign page (browsers open WebSockets to any host without CORS)', async () => {
    expect(await handshake(FOREIGN)).toBe(403);
    expect(await handshake('http://localhost:3000')).toBe(403);
  });

  it("opens for the server's own page, a listed origin and clients that send no Origin", async () => {
    const own = new URL(url.replace('ws:', 'http:')).origin;
    expect(await handshake(own)).toBe(101);
    expect(await handshake(LISTED)).toBe(101);
    expect(await handshake(undefined)).toBe(101);
  });
});
