// Graceful shutdown of the real `moe-server serve` process: on SIGTERM it stops accepting,
// lets running streams (SSE and WebSocket alike) finish within --shutdown-timeout, cancels
// what is left with an error chunk or event, closes WebSockets with 1001, and exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const BIN = fileURLToPath(new URL('../../bin/moe-server.mjs', import.meta.url));

interface Served {
  child: ChildProcess;
  baseUrl: string;
  exited: Promise<number | null>;
  stderr(): string;
}

/** Starts the server on a free port and resolves once it says it is ready. */
function serve(model: TinyModel, shutdownTimeout: number): Promise<Served> {
  const args = [
    'serve',
    '--model',
    model.dir,
    '--cache-dir',
    model.cacheDir,
    '--port',
    '0',
    '--weights',
    'fp32',
    '--tensor-parallel',
    '1',
    '--threads',
    '1',
  ];
  const child = spawn(process.execPath, [BIN, ...args, '--shutdown-timeout', String(shutdownTimeout)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const address = /listening on (http:\/\/\S+)/.exec(stderr)?.[1];
      if (address && stderr.includes('ready:')) resolve({ child, baseUrl: address, exited, stderr: () => stderr });
    });
    void exited.then((code) => reject(new Error(`server exited (${code}) before it was ready:\n${stderr}`)));
  });
}

/** Starts a streaming completion and resolves once its first chunk arrived; `rest` reads it to the end. */
async function startStream(baseUrl: string, maxTokens: number): Promise<{ rest: Promise<string> }> {
  const response = await fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'model',
      prompt: 'Once upon a time',
      max_tokens: maxTokens,
      ignore_eos: true,
      temperature: 0,
      stream: true,
    }),
  });
  expect(response.status).toBe(200);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while (!text.includes('data: ')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const rest = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return text;
        text += value;
      }
    } catch {
      return text; // the connection was closed under it
    }
  })();
  return { rest };
}

interface WsRun {
  events: Array<{ type: string; id: string | null; status?: string; error?: { code: string | null } }>;
  send(message: object): void;
  /** The close code the server sent. */
  closed: Promise<number>;
  /** Resolves with the first event matching. */
  waitFor(match: (event: WsRun['events'][number]) => boolean): Promise<WsRun['events'][number]>;
}

/** Opens /v1/ws, starts request "w" and resolves once its first delta arrived. */
async function startWsRequest(baseUrl: string, maxTokens: number): Promise<WsRun> {
  const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/ws`);
  const events: WsRun['events'] = [];
  const wakers: Array<() => void> = [];
  socket.on('message', (data) => {
    events.push(JSON.parse(String(data)));
    for (const wake of wakers.splice(0)) wake();
  });
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const run: WsRun = {
    events,
    closed,
    send: (message) => socket.send(JSON.stringify(message)),
    async waitFor(match) {
      for (;;) {
        const found = events.find(match);
        if (found) return found;
        await new Promise<void>((resolve) => wakers.push(resolve));
      }
    },
  };
  run.send({
    type: 'response.create',
    id: 'w',
    endpoint: 'completions',
    request: { prompt: 'Once upon a time', max_tokens: maxTokens, ignore_eos: true, temperature: 0 },
  });
  await run.waitFor((e) => e.id === 'w' && e.type === 'response.output_text.delta');
  return run;
}

describe('graceful shutdown', () => {
  let model: TinyModel;
  beforeAll(() => {
    model = writeTinyModel({ max_position_embeddings: 4096 });
  });
  afterAll(() => model?.remove());

  it('lets a running stream finish, refuses new connections meanwhile, and exits 0', async () => {
    const served = await serve(model, 30);
    const stream = await startStream(served.baseUrl, 300);
    const ws = await startWsRequest(served.baseUrl, 300);
    served.child.kill('SIGTERM');
    // The WebSocket request keeps running like the HTTP one; the socket takes nothing new.
    await new Promise((resolve) => setTimeout(resolve, 200));
    ws.send({ type: 'response.create', id: 'late', request: { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 } });
    expect(await ws.waitFor((e) => e.id === 'late')).toMatchObject({ type: 'error', error: { code: 'shutting_down' } });
    expect(await ws.waitFor((e) => e.id === 'w' && (e.type === 'response.done' || e.type === 'error'))).toMatchObject({
      type: 'response.done',
      status: 'completed',
    });
    expect(await ws.closed).toBe(1001);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const during = await fetch(`${served.baseUrl}/health`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect(during === 'refused' || during === 503).toBe(true);
    const body = await stream.rest;
    expect(body).toContain('"finish_reason":"length"');
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(await served.exited).toBe(0);
    await expect(fetch(`${served.baseUrl}/health`)).rejects.toThrow();
  });

  it('does not wait on a WebSocket client that never answers the close frame', async () => {
    const served = await serve(model, 30);
    const { hostname, port } = new URL(served.baseUrl);
    // A raw upgrade that then ignores everything the server sends, close frame included.
    const socket = connect(Number(port), hostname);
    const upgraded = new Promise<string>((resolve) => socket.once('data', (chunk) => resolve(String(chunk))));
    socket.write(
      `GET /v1/ws HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ` +
        `dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect(await upgraded).toMatch(/^HTTP\/1\.1 101/);
    const signalledAt = performance.now();
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
    // ws would otherwise hold the socket for its 30 s close timeout.
    expect(performance.now() - signalledAt).toBeLessThan(15_000);
    socket.destroy();
  });

  it('cancels streams that outlast --shutdown-timeout, ending each with an error, and still exits 0 in about that time', async () => {
    const served = await serve(model, 1);
    const stream = await startStream(served.baseUrl, 4000);
    const ws = await startWsRequest(served.baseUrl, 4000);
    const signalledAt = performance.now();
    served.child.kill('SIGTERM');
    const body = await stream.rest;
    // Cancelled by the shutdown, not failed: a 503-style error the client may retry.
    expect(await ws.waitFor((e) => e.id === 'w' && (e.type === 'response.done' || e.type === 'error'))).toMatchObject({
      type: 'error',
      error: { code: 'shutting_down' },
    });
    expect(await ws.closed).toBe(1001);
    expect(body).toMatch(/data: \{"error":\{[^\n]*"code":"shutting_down"/);
    expect(await served.exited).toBe(0);
    const seconds = (performance.now() - signalledAt) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(0.9);
    expect(seconds).toBeLessThan(10);
    expect(body).not.toContain('"finish_reason":"length"');
    expect(served.stderr()).toMatch(/cancelling 2 request/);
  });
});
