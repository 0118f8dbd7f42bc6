// A real server over a tiny synthetic checkpoint: the real loader, compiler, engine worker
// and ONNX Runtime, the real Fastify app listening on a free port. One per test file.
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll } from 'vitest';
import { buildApp, type App, type AppOptions } from '../../server/app.ts';
import type { GenerationEvent } from '../../server/engine/api.ts';
import { loadServedModel, type ServedModel } from '../../server/served-model.ts';
import type { SyntheticFamily } from '../../models/synthetic.ts';
import { writeTinyModel, type TinyModel } from '../helpers/tiny-model.ts';

/** The id test models are served under. */
export const MODEL = 'tiny-moe';

export interface TestModel {
  tiny: TinyModel;
  model: ServedModel;
  close(): Promise<void>;
}

/** fp32 weights and one thread: two test files may run side by side on two cores. */
export async function startTestModel(
  configOverrides: Record<string, unknown> = {},
  servedModelName = MODEL,
  family: SyntheticFamily = 'deepseek',
  /** Changes the checkpoint's files before it is loaded (a test's own chat template, say). */
  prepare?: (dir: string) => void,
): Promise<TestModel> {
  const tiny = writeTinyModel(configOverrides, 1, family);
  prepare?.(tiny.dir);
  const model = await loadServedModel({
    modelDir: tiny.dir,
    cacheDir: tiny.cacheDir,
    weights: 'fp32',
    threads: 1,
    tensorParallel: 1,
    servedModelName,
  });
  return {
    tiny,
    model,
    close: async () => {
      await model.engine.close();
      tiny.remove();
    },
  };
}

export interface TestServer extends App {
  url: string;
  close(): Promise<void>;
}

export async function listen(options: AppOptions): Promise<TestServer> {
  const built = await buildApp(options);
  await built.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = built.app.server.address() as AddressInfo;
  const close = async (): Promise<void> => {
    const closing = built.app.close();
    // Clients may hold connections that never carried a request (fetch opens spares); they
    // would keep close() waiting for the client's keep-alive timeout.
    built.app.server.closeAllConnections();
    await closing;
  };
  return { ...built, url: `http://127.0.0.1:${port}`, close };
}

/** The official client, without retries so that 429 and 503 reach the test. */
export function openaiClient(server: TestServer, apiKey = 'unused'): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
}

export async function postJson(server: TestServer, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** The raw `data:` payloads of an SSE body, in order (including "[DONE]"). */
export async function ssePayloads(response: Response): Promise<string[]> {
  const text = await response.text();
  const events = text.split('\n\n').filter((block) => block.length > 0);
  for (const event of events) if (!event.startsWith('data: ')) throw new Error(`not an SSE data event: ${event}`);
  return events.map((event) => event.slice('data: '.length));
}

export async function waitFor<T>(find: () => T | undefined | null | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined && found !== null && found !== false) return found;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

type Finished = Extract<GenerationEvent, { type: 'finished' }>;

/** Records every engine event: what the engine did with a request whose client went away. */
export function recordEngine(model: ServedModel): { tokens: () => number; finished: () => Finished[]; stop: () => void } {
  const events: GenerationEvent[] = [];
  const stop = model.engine.observe((_, event) => events.push(event));
  return {
    tokens: () => events.filter((e) => e.type === 'token').length,
    finished: () => events.filter((e): e is Finished => e.type === 'finished'),
    stop,
  };
}

export interface Served {
  readonly test: TestModel;
  readonly server: TestServer;
  readonly client: OpenAI;
}

/** One tiny model and one listening server for the calling describe block (beforeAll/afterAll). */
export function serveTinyModel(
  options: Omit<AppOptions, 'model'> = {},
  configOverrides: Record<string, unknown> = {},
  prepare?: (dir: string) => void,
): Served {
  let state: Served | null = null;
  beforeAll(async () => {
    const test = await startTestModel(configOverrides, MODEL, 'deepseek', prepare);
    const server = await listen({ ...options, model: test.model });
    state = { test, server, client: openaiClient(server) };
  });
  afterAll(async () => {
    await state?.server.close();
    await state?.test.close();
  });
  const current = (): Served => {
    if (state === null) throw new Error('serveTinyModel: used before its beforeAll ran');
    return state;
  };
  return {
    get test() {
      return current().test;
    },
    get server() {
      return current().server;
    },
    get client() {
      return current().client;
    },
  };
}
