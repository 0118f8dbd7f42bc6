// The main-thread side of the engine: starts the worker, submits requests and hands each
// caller an async iterable of its own events. It implements the engine's API (api.ts).
import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { AsyncQueue } from '../async-queue.ts';
import type {
  Engine,
  EngineOptions,
  EngineStats,
  GenerationEvent,
  GenerationObserver,
  GenerationRequest,
  ModelInfo,
  StepObserver,
  StepReport,
} from './api.ts';
import type { FromWorker } from './protocol.ts';

export class EngineStartError extends Error {
  override name = 'EngineStartError';
}

type Listener = (event: GenerationEvent) => void;

const WORKER_ENTRY = new URL('../../runtime/worker-bootstrap.mjs', import.meta.url);
const ENGINE_ENTRY = new URL('./worker.ts', import.meta.url).href;

export class EngineClient implements Engine {
  private readonly listeners = new Map<string, Listener>();
  private readonly observers = new Set<GenerationObserver>();
  private readonly stepObservers = new Set<StepObserver>();
  /** Requests that asked for their routing (GenerationRequest.routedExperts). */
  private readonly routingWanted = new Set<string>();
  /** Why the worker stopped; null while it runs. */
  private stoppedBecause: string | null = null;
  /** close() was called: the worker's exit is the server shutting down. */
  private closing = false;
  private latestStats: EngineStats;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
  ) {
    const { numBlocks, blockSize } = info.kvCache;
    this.latestStats = {
      numRunning: 0,
      numWaiting: 0,
      kvBlocksUsed: 0,
      kvBlocksTotal: numBlocks,
      kvBlockSize: blockSize,
      numPreemptions: 0,
      prefixCacheQueryTokens: 0,
      prefixCacheHitTokens: 0,
    };
    worker.on('message', (message: FromWorker) => this.dispatch(message));
    worker.on('error', (err) => this.failEveryone(`engine worker crashed: ${err.message}`));
    worker.on('exit', () =>
      this.failEveryone(this.stopKind === 'shutdown' ? 'the engine stopped: the server is shutting down' : 'engine worker exited'),
    );
  }

  /** How requests end once the worker is gone: cancelled by a shutdown, or failed by a fault. */
  private get stopKind(): 'shutdown' | 'internal' {
    return this.closing ? 'shutdown' : 'internal';
  }

  /** False once the worker has exited or crashed: every later request fails at once. */
  get isRunning(): boolean {
    return this.stoppedBecause === null;
  }

  /** Requests whose events are still awaited. */
  get numInFlight(): number {
    return this.listeners.size;
  }

  /** The engine's queues and cache as of its last step. */
  get stats(): EngineStats {
    return this.latestStats;
  }

  observe(observer: GenerationObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  observeSteps(observer: StepObserver): () => void {
    this.stepObservers.add(observer);
    return () => this.stepObservers.delete(observer);
  }

  static start(options: EngineOptions, onProgress?: (stage: string, done: number, total: number) => void): Promise<EngineClient> {
    const worker = new Worker(WORKER_ENTRY, { argv: [ENGINE_ENTRY], workerData: options });
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
  async *generate(request: GenerationRequest, signal?: AbortSignal): AsyncGenerator<GenerationEvent> {
    if (this.stoppedBecause !== null) {
      yield { type: 'error', message: this.stoppedBecause, kind: this.stopKind };
      return;
    }
    const id = randomUUID();
    if (request.routedExperts === true) this.routingWanted.add(id);
    const queue = new AsyncQueue<GenerationEvent>();
    this.listeners.set(id, (event) => queue.push(event));
    const onAbort = (): void => this.worker.postMessage({ type: 'cancel', id });
    signal?.addEventListener('abort', onAbort, { once: true });
    this.worker.postMessage({ type: 'submit', id, request });
    // 'abort' never fires for a signal that is already aborted (a client gone before submit).
    if (signal?.aborted) onAbort();
    let ended = false;
    try {
      for (;;) {
        // The listener is only removed below, so the queue never ends before the request does.
        const event = (await queue.next())!;
        ended = event.type === 'finished' || event.type === 'error';
        yield event;
        if (ended) return;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.listeners.delete(id);
      this.routingWanted.delete(id);
      // A consumer that stops early (break, throw) must not leave the sequence running.
      if (!ended && !signal?.aborted) this.worker.postMessage({ type: 'cancel', id });
    }
  }

  async close(): Promise<void> {
    if (this.stoppedBecause !== null) return;
    this.closing = true;
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.postMessage({ type: 'shutdown' });
    await exited;
  }

  private dispatch(message: FromWorker): void {
    if (message.type === 'submitted') this.deliver(message.id, message.event);
    if (message.type !== 'step') return;
    this.latestStats = message.stats;
    if (message.report !== null) {
      for (const observer of this.stepObservers) observer(message.report);
      this.deliverRouting(message.report);
    }
    for (const { seqId, event } of message.events) this.deliver(seqId, event);
  }

  /** Each sequence that asked for it gets its own rows of the step's routing, before its token events. */
  private deliverRouting(report: StepReport): void {
    if (this.routingWanted.size === 0) return;
    let row = 0;
    for (const { seqId, start, numTokens } of report.sequences) {
      if (this.routingWanted.has(seqId)) {
        const rows = <T extends Int32Array | Float32Array>(values: T): T => {
          const topK = values.length / report.numTokens;
          return values.subarray(row * topK, (row + numTokens) * topK) as T;
        };
        const expertIds = report.expertIds.map(rows);
        const expertWeights = report.expertWeights.map(rows);
        this.deliver(seqId, { type: 'routed', start, numTokens, expertIds, expertWeights });
      }
      row += numTokens;
    }
  }

  private deliver(id: string, event: GenerationEvent): void {
    for (const observer of this.observers) observer(id, event);
    this.listeners.get(id)?.(event);
  }

  private failEveryone(message: string): void {
    this.stoppedBecause ??= message;
    for (const [id, listener] of this.listeners) {
      const event: GenerationEvent = { type: 'error', message, kind: this.stopKind };
      for (const observer of this.observers) observer(id, event);
      listener(event);
    }
    this.listeners.clear();
  }
}
