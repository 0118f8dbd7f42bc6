// DNS rebinding (server/hosts.ts): on a loopback address the server answers only to loopback
// host names and the listed ones, so a page whose own name was pointed at 127.0.0.1 (its
// Host and Origin then agree, and the origin check takes it for the server's own page) gets
// 403; on another address the check is off unless names are listed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { ConfigValueError, resolveConfig } from '../../server/config.ts';
import { acceptedHosts, normalizeHostName } from '../../server/hosts.ts';
import type { ServedModel } from '../../server/served-model.ts';

const body = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 });

describe('which host names a server answers to', () => {
  it('checks on a loopback address, not on another unless names are listed', () => {
    expect(acceptedHosts('127.0.0.1', [])).toEqual(new Set(['127.0.0.1']));
    expect(acceptedHosts('localhost', [])).toEqual(new Set(['localhost']));
    expect(acceptedHosts('::1', [])).toEqual(new Set(['[::1]']));
    expect(acceptedHosts('0.0.0.0', [])).toBeNull();
    expect(acceptedHosts('::', [])).toBeNull();
    expect(acceptedHosts('0.0.0.0', ['models.internal'])).toEqual(new Set(['models.internal', '0.0.0.0']));
    expect(acceptedHosts('127.0.0.1', ['*'])).toBeNull();
  });

  it('reads --allowed-hosts and MOE_SERVER_ALLOWED_HOSTS as host names or addresses', () => {
    expect(normalizeHostName(' Models.Example. ')).toBe('models.example');
    expect(normalizeHostName('::1')).toBe('[::1]');
    expect(normalizeHostName('10.0.0.7')).toBe('10.0.0.7');
    expect(normalizeHostName('http://x.example')).toBeNull();
    expect(resolveConfig({ 'allowed-hosts': ['A.example', 'b.example'] }, {}).allowedHosts).toEqual(['a.example', 'b.example']);
    expect(resolveConfig({}, { MOE_SERVER_ALLOWED_HOSTS: 'a.example, 10.0.0.7' }).allowedHosts).toEqual(['a.example', '10.0.0.7']);
    expect(() => resolveConfig({ 'allowed-hosts': 'not a host' }, {})).toThrow(ConfigValueError);
    expect(() => resolveConfig({ 'allowed-hosts': 'not a host' }, {})).toThrow(/--allowed-hosts has "not a host"/);
  });
});

describe('requests to a loopback server under another name', () => {
  let built: App;
  beforeAll(async () => {
    built = await buildApp({ model: new Promise<ServedModel>(() => {}), acceptedHosts: acceptedHosts('127.0.0.1', ['models.internal']) });
  });
  afterAll(async () => built.app.close());

  const get = (host: string, headers: Record<string, string> = {}) =>
    built.app.inject({ method: 'GET', url: '/health', headers: { host, ...headers } });

  it('answers loopback names and listed ones, on any port', async () => {
    for (const host of [
      '127.0.0.1:8000',
      'localhost:8000',
      'LOCALHOST',
      'app.localhost:5173',
      '[::1]:8000',
      '127.0.0.2',
      'models.internal:8000',
    ]) {
      expect((await get(host)).statusCode, host).toBe(503); // the model is loading: the request got through
    }
  });

  it('refuses a rebound name with 403 in the error envelope, GET and POST alike, before the origin check', async () => {
    const attacker = 'attacker.example:8000';
    const origin = `http://${attacker}`;
    const responses = [
      await get(attacker),
      await get(attacker, { origin }),
      await built.app.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        headers: { host: attacker, origin, 'content-type': 'application/json' },
        payload: body,
      }),
      await get('127.0.0.1.attacker.example'),
    ];
    for (const response of responses) {
      expect(response.statusCode).toBe(403);
      expect(response.json()).toEqual({
        error: {
          message: expect.stringContaining('--allowed-hosts'),
          type: 'invalid_request_error',
          param: null,
          code: 'host_not_allowed',
        },
      });
    }
  });
});
