// The engine thread's side of constrained decoding: starts the grammar worker on first use,
// opens one SequenceConstraint per constrained sequence (its grammar compiled there, off the
// model's thread), and hands the engine each sequence's mask from shared memory. After a
// token is sampled the constraint posts it and marks its slot pending; the grammar worker
// accepts it and fills the next mask while the engine runs the next model step.
import { Worker } from 'node:worker_threads';
import type { FromGrammarWorker, GrammarWorkerInit, ToGrammarWorker } from './grammar-protocol.ts';
import { createMaskSlot, SLOT_FAILED, SLOT_PENDING, SLOT_READY, slotViews } from './grammar-protocol.ts';
import { GrammarCompileError, type GrammarSpec } from './grammar-spec.ts';
import { applyTokenBitmask } from './token-mask.ts';

const WORKER_ENTRY = new URL('../../../runtime/worker-bootstrap.mjs', import.meta.url);
const GRAMMAR_ENTRY = new URL('./grammar-worker.ts', import.meta.url).href;

export type ConstraintStatus = 'pending' | 'ready' | 'failed';

type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
  timeoutMs?: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };

/** Atomics.waitAsync (Node >= 16); not in the ES2022 typings this project compiles against. */
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

interface PendingOpen {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** One constrained sequence's grammar, as the engine sees it: a mask to apply and tokens to report. */
export class SequenceConstraint {
  private readonly state: Int32Array;
  private readonly mask: Int32Array;
  private closed = false;

  constructor(
    private readonly service: GrammarService,
    readonly seqId: string,
    slot: SharedArrayBuffer,
    private readonly stopTokenIds: ReadonlySet<number>,
  ) {
    ({ state: this.state, mask: this.mask } = slotViews(slot));
  }

  /** pending: the grammar worker is still computing the mask for the next token. */
  get status(): ConstraintStatus {
    const state = Atomics.load(this.state, 0);
    return state === SLOT_READY ? 'ready' : state === SLOT_FAILED ? 'failed' : 'pending';
  }

  /** Refused tokens -> -Infinity; only while the status is ready. */
  applyMask(logits: Float32Array): void {
    if (this.status !== 'ready') throw new Error(`the grammar mask of ${this.seqId} is not ready`);
    applyTokenBitmask(logits, this.mask);
  }

  /** True for a stop token: the mask allows one only where the grammar is complete. */
  completesWith(token: number): boolean {
    return this.stopTokenIds.has(token);
  }

  /** Reports the sampled token; the next mask is pending until the grammar worker has it. */
  advance(token: number): void {
    if (this.closed) return;
    Atomics.store(this.state, 0, SLOT_PENDING);
    this.service.post({ type: 'advance', items: [[this.seqId, token]] });
  }

  /** Resolves once the status is no longer pending (or after timeoutMs). */
  async settled(timeoutMs = 1000): Promise<void> {
    const wait = waitAsync(this.state, 0, SLOT_PENDING, timeoutMs);
    if (wait.async) await wait.value;
  }

  /** The grammar worker stopped: no mask will ever come. */
  fail(): void {
    Atomics.store(this.state, 0, SLOT_FAILED);
    Atomics.notify(this.state, 0);
  }

  /** Frees the matcher; the sequence has ended. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.service.release(this);
  }
}

/**
 * Compiles and matches grammars in a worker thread of its own. Started on the first
 * constrained request (most servers never see one); restarted if it ever dies.
 */
export class GrammarService {
  private worker: Promise<Worker> | null = null;
  private readonly opening = new Map<string, PendingOpen>();
  private readonly live = new Map<string, SequenceConstraint>();
  private readonly stopTokenIds: ReadonlySet<number>;

  constructor(private readonly init: GrammarWorkerInit) {
    this.stopTokenIds = new Set(init.stopTokenIds);
  }

  /** Sequences whose grammar is open. */
  get numOpen(): number {
    return this.live.size;
  }

  /**
   * Compiles the spec (or takes it from the cache) and starts the sequence's matcher with its
   * first mask ready. Rejects with a GrammarCompileError when the grammar cannot be compiled.
   */
  async open(seqId: string, spec: GrammarSpec): Promise<SequenceConstraint> {
    const worker = await this.started();
    const slot = createMaskSlot(this.init.logitsSize);
    const opened = new Promise<void>((resolve, reject) => this.opening.set(seqId, { resolve, reject }));
    worker.postMessage({ type: 'open', seqId, spec, slot } satisfies ToGrammarWorker);
    await opened;
    const constraint = new SequenceConstraint(this, seqId, slot, this.stopTokenIds);
    this.live.set(seqId, constraint);
    return constraint;
  }

  /** Stops the worker; open constraints fail. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (worker !== null) await (await worker.catch(() => null))?.terminate();
  }

  post(message: ToGrammarWorker): void {
    this.worker?.then(
      (w) => w.postMessage(message),
      () => {},
    );
  }

  release(constraint: SequenceConstraint): void {
    if (this.live.get(constraint.seqId) !== constraint) return;
    this.live.delete(constraint.seqId);
    this.post({ type: 'close', seqId: constraint.seqId });
  }

  private started(): Promise<Worker> {
    this.worker ??= this.startWorker();
    return this.worker;
  }

  private startWorker(): Promise<Worker> {
    const worker = new Worker(WORKER_ENTRY, { argv: [GRAMMAR_ENTRY], workerData: this.init });
    const ready = new Promise<Worker>((resolve, reject) => {
      worker.on('message', (message: FromGrammarWorker) => {
        if (message.type === 'ready') resolve(worker);
        else if (message.type === 'fatal') reject(new Error(`the grammar engine failed to start: ${message.message}`));
        else this.answer(message);
      });
      worker.on('error', (err) => reject(err));
      worker.on('exit', () => {
        reject(new Error('the grammar worker exited'));
        this.lost(worker);
      });
    });
    ready.catch(() => {
      this.worker = null; // the next open tries again
    });
    return ready;
  }

  private answer(message: Extract<FromGrammarWorker, { type: 'opened' | 'open-failed' }>): void {
    const pending = this.opening.get(message.seqId);
    this.opening.delete(message.seqId);
    if (pending === undefined) return;
    if (message.type === 'opened') pending.resolve();
    else if (message.compileError) pending.reject(new GrammarCompileError(message.specType, message.reason));
    else pending.reject(new Error(`the grammar engine failed: ${message.reason}`));
  }

  /** The worker is gone: whatever waited on it fails, and the next open starts a new one. */
  private lost(worker: Worker): void {
    this.worker?.then(
      (current) => {
        if (current === worker) this.worker = null;
      },
      () => {},
    );
    for (const pending of this.opening.values()) pending.reject(new Error('the grammar worker stopped'));
    this.opening.clear();
    for (const constraint of this.live.values()) constraint.fail();
    this.live.clear();
  }
}
