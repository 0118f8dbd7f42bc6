// Graceful shutdown of the real `moe-server serve` process: on SIGTERM it stops accepting,
// lets running streams finish within --shutdown-timeout, cancels what is left, and exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  const args = ['serve', '--model', model.dir, '--cache-dir', model.cacheDir, '--port', '0', '--weights', 'fp32', '--tensor-parallel', '1', '--threads', '1'];
  const child = spawn(process.execPath, [BIN, ...args, '--shutdown-timeout', String(shutdownTimeout)], { stdio: ['ignore', 'ignore', 'pipe'] });
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
    body: JSON.stringify({ model: 'model', prompt: 'Once upon a time', max_tokens: maxTokens, ignore_eos: true, temperature: 0, stream: true }),
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

describe('graceful shutdown', () => {
  let model: TinyModel;
  beforeAll(() => {
    model = writeTinyModel({ max_position_embeddings: 4096 });
  });
  afterAll(() => model?.remove());

  it('lets a running stream finish, refuses new connections meanwhile, and exits 0', async () => {
    const served = await serve(model, 30);
    const stream = await startStream(served.baseUrl, 300);
    served.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const during = await fetch(`${served.baseUrl}/health`).then((r) => r.status, () => 'refused');
    expect(during === 'refused' || during === 503).toBe(true);
    const body = await stream.rest;
    expect(body).toContain('"finish_reason":"length"');
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(await served.exited).toBe(0);
    await expect(fetch(`${served.baseUrl}/health`)).rejects.toThrow();
  });

  it('cancels a stream that outlasts --shutdown-timeout and still exits 0, in about that time', async () => {
    const served = await serve(model, 1);
    const stream = await startStream(served.baseUrl, 4000);
    const signalledAt = performance.now();
    served.child.kill('SIGTERM');
    const body = await stream.rest;
    expect(await served.exited).toBe(0);
    const seconds = (performance.now() - signalledAt) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(0.9);
    expect(seconds).toBeLessThan(10);
    expect(body).not.toContain('"finish_reason":"length"');
    expect(served.stderr()).toMatch(/cancelling 1 request/);
  });
});
