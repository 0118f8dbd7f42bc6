// The main-thread side of the engine: starts the worker, submits requests and hands each
// caller an async iterable of its own events. Routes and the CLI use only this.
import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { EngineEvent } from './engine.ts';
import type { EngineOptions, FromWorker, ModelInfo, SubmitRequest } from './protocol.ts';

export type GenerationEvent =
  | { type: 'accepted'; promptTokens: number }
  | Exclude<EngineEvent, { type: 'failed' }>
  | { type: 'error'; message: string; kind: 'invalid_request' | 'internal' };

export class EngineStartError extends Error {
  override name = 'EngineStartError';
}

type Listener = (event: GenerationEvent) => void;

const WORKER_ENTRY = new URL('./worker-bootstrap.mjs', import.meta.url);

export class EngineClient {
  private readonly listeners = new Map<string, Listener>();

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
  ) {
    worker.on('message', (message: FromWorker) => this.dispatch(message));
    worker.on('error', (err) => this.failEveryone(`engine worker crashed: ${err.message}`));
    worker.on('exit', () => this.failEveryone('engine worker exited'));
  }

  static start(options: EngineOptions, onProgress?: (stage: string, done: number, total: number) => void): Promise<EngineClient> {
    const worker = new Worker(WORKER_ENTRY, { workerData: options });
    return new Promise((resolve, reject) => {
      const onMessage = (message: FromWorker): void => {
        if (message.type === 'progress') onProgress?.(message.stage, message.done, message.total);
        if (message.type === 'fatal') {
          cleanup();
          void worker.terminate();
          reject(new EngineStartError(message.message));
        }
        if (message.type === 'ready') {
          cleanup();
          resolve(new EngineClient(worker, message.info));
        }
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(new EngineStartError(`engine worker failed to start: ${err.message}`));
      };
      const cleanup = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
    });
  }

  /** Streams one request's events; aborting the signal cancels the request in the engine. */
  async *generate(request: SubmitRequest, signal?: AbortSignal): AsyncGenerator<GenerationEvent> {
    const id = randomUUID();
    const queue: GenerationEvent[] = [];
    let wake: (() => void) | null = null;
    this.listeners.set(id, (event) => {
      queue.push(event);
      wake?.();
    });
    const onAbort = (): void => this.worker.postMessage({ type: 'cancel', id });
    signal?.addEventListener('abort', onAbort, { once: true });
    this.worker.postMessage({ type: 'submit', id, request });
    let ended = false;
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const event = queue.shift()!;
        ended = event.type === 'finished' || event.type === 'error';
        yield event;
        if (ended) return;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.listeners.delete(id);
      // A consumer that stops early (break, throw) must not leave the sequence running.
      if (!ended && !signal?.aborted) this.worker.postMessage({ type: 'cancel', id });
    }
  }

  async close(): Promise<void> {
    this.worker.postMessage({ type: 'shutdown' });
    await new Promise((resolve) => this.worker.once('exit', resolve));
  }

  private dispatch(message: FromWorker): void {
    if (message.type === 'accepted') this.listeners.get(message.id)?.({ type: 'accepted', promptTokens: message.promptTokens });
    if (message.type === 'rejected') this.listeners.get(message.id)?.({ type: 'error', message: message.message, kind: 'invalid_request' });
    if (message.type !== 'events') return;
    for (const event of message.events) {
      const listener = this.listeners.get(event.seqId);
      if (!listener) continue;
      listener(event.type === 'failed' ? { type: 'error', message: event.message, kind: 'internal' } : event);
    }
  }

  private failEveryone(message: string): void {
    for (const listener of this.listeners.values()) listener({ type: 'error', message, kind: 'internal' });
    this.listeners.clear();
  }
}
