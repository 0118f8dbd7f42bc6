// Rank 0's view of tensor parallelism: its own shard sessions plus one worker thread per
// other rank. Attention, each MLP stage and the LM head run on every rank at once, each over
// its slice of the heads or weights; the slices' outputs are summed (o_proj parts, MLPs) or
// laid side by side (logits).
// ONNX Runtime's intra-op pool cannot do this for us: without spinning, waking its threads
// costs more than the small matmuls of a decode step take; two threads with a slice each
// keep both cores busy.
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { SessionSettings } from '../../kernels/session.ts';
import { compilePagedAttentionKernel } from '../../kernels/wasm/paged-attention-kernel.ts';
import type { Manifest } from '../../models/compile.ts';
import type { AttentionShard, KvCacheSize } from '../attention/attention-shard.ts';
import type { RoutingResult } from '../moe/router.ts';
import type { KvCachePool } from '../attention/kv-cache.ts';
import { runFeedForward } from '../moe/moe-layer.ts';
import { routingChecksum } from '../moe/router.ts';
import { openShardSessions, runLmHeadShard, type ShardSessions } from './shard-sessions.ts';
import { blocksCovering, type StepSlot } from '../step-batch.ts';
import { CHUNK_ROWS, JOB, ShardChannel, SLOT } from './shard-channel.ts';
import type { ShardWorkerData, StepPlanMessage } from './shard-worker.ts';

const WORKER_ENTRY = new URL('../worker-bootstrap.mjs', import.meta.url);
const SHARD_ENTRY = new URL('./shard-worker.ts', import.meta.url).href;
/** A shard that has not answered in this long is taken for dead: fail the step, don't hang. */
const SHARD_TIMEOUT_MS = 120_000;
/** How long a stopping shard gets to release its sessions before its thread is terminated. */
const SHARD_STOP_TIMEOUT_MS = 10_000;
/** How long rank 0 polls for a shard's answer before blocking. */
const SPIN_MS = 5;

/** One chunk's three moves in ShardGroup.fanOut. */
interface FanOutJob {
  send(remote: Remote, start: number, rows: number): void;
  runLocal(start: number, rows: number): void;
  collect(remote: Remote, start: number, rows: number): void;
}

export class ShardFailedError extends Error {
  override name = 'ShardFailedError';
}

interface Remote {
  rank: number;
  worker: Worker;
  channel: ShardChannel;
  /** Number of the last job posted. */
  seq: number;
  /** Step plans (block tables) go here; null for a rank without attention heads. */
  plans: MessagePort | null;
  /** A step plan was posted that the rank's next attention job must read first. */
  planPending: boolean;
  /** Vocabulary columns [vocabStart, vocabEnd) of its logits. */
  vocabStart: number;
  vocabEnd: number;
  /** Set when the worker exited or stopped answering: later steps fail at once instead of waiting. */
  failure: string | null;
}

interface JobSlots {
  kind: number;
  rows: number;
  layer?: number;
  start?: number;
}

export class ShardGroup {
  /** Rows per chunk of a job, at most CHUNK_ROWS (the channel's size); tests lower it to cross chunk boundaries. */
  chunkRows = CHUNK_ROWS;
  /**
   * When set (bench:profile sets it), every hand-off appends how long rank 0 waited for a
   * shard's answer after finishing its own part, in ms: the cost of the shards not finishing
   * together.
   */
  handoffWaits: number[] | null = null;

  private constructor(
    private readonly local: ShardSessions,
    private readonly remotes: Remote[],
    private readonly manifest: Manifest,
  ) {}

  static async open(dir: string, manifest: Manifest, settings: SessionSettings): Promise<ShardGroup> {
    const kernel = settings.attention === 'onnx' ? null : await compilePagedAttentionKernel();
    const { spec } = manifest;
    const shape = {
      hiddenSize: spec.hiddenSize,
      headDim: spec.headDim,
      maxVocabSlice: Math.max(...manifest.lmHead.map((s) => s.end - s.start)),
    };
    const ranks = Array.from({ length: manifest.tensorParallel - 1 }, (_, i) => i + 1);
    const remotes = await Promise.all(ranks.map((rank) => startRemote(dir, manifest, rank, settings, kernel, ShardChannel.create(shape))));
    return new ShardGroup(openShardSessions(dir, manifest, 0, settings, kernel), remotes, manifest);
  }

  /** Rank 0's attention shard (MLA runs all of its attention there). */
  get localAttention(): AttentionShard {
    return this.local.attention;
  }

  /** Gives every rank with attention heads its planes of a cache of `size`; returns rank 0's. */
  attachKvCache(size: KvCacheSize): KvCachePool {
    const pool = this.local.attention.attachCache(size);
    for (const remote of this.attentionRemotes()) {
      post(remote, { kind: JOB.kvCache, rows: size.numBlocks, layer: size.blockSize });
      waitFor(remote);
    }
    return pool;
  }

  /** Announces a step's sequences (rows, cached lengths, block tables) to every rank's attention. */
  beginStep(slots: StepSlot[]): void {
    this.local.attention.beginStep(slots);
    const remotes = this.attentionRemotes();
    if (remotes.length === 0) return;
    // Only the blocks the step reads; the shard's copy of each table is as of the step's start.
    const blockSize = this.local.attention.pool.blockSize;
    const message: StepPlanMessage = {
      slots: slots.map(({ row, numTokens, start, cache }) => ({
        row,
        numTokens,
        start,
        cache: { blockIds: cache.blockIds.slice(0, blocksCovering({ start, numTokens }, blockSize)), numCachedTokens: start },
      })),
    };
    for (const remote of remotes) {
      remote.plans?.postMessage(message);
      remote.planPending = true;
    }
  }

  /**
   * One layer's standard attention over the step's rows (after beginStep): every rank projects
   * q/k/v for its heads, caches k/v, attends and applies its part of o_proj, all at once; the
   * parts are added into the residual `hidden` in place.
   */
  attention(layer: number, hidden: Float32Array, cos: Float32Array, sin: Float32Array, numTokens: number): void {
    const h = this.manifest.spec.hiddenSize;
    const local = this.local.attention;
    const half = this.manifest.spec.headDim / 2;
    const rowsOf = (data: Float32Array, width: number, start: number, rows: number) => data.subarray(start * width, (start + rows) * width);
    const addInto = (partial: Float32Array, start: number, rows: number) => {
      const offset = start * h;
      for (let i = 0; i < rows * h; i++) hidden[offset + i] += partial[i];
    };
    this.fanOut(
      numTokens,
      this.chunkRows,
      {
        send: (remote, start, rows) => {
          remote.channel.x.set(rowsOf(hidden, h, start, rows));
          remote.channel.rope.set(rowsOf(cos, half, start, rows));
          remote.channel.rope.set(rowsOf(sin, half, start, rows), rows * half);
          post(remote, { kind: JOB.attention, rows, layer, start });
        },
        // attn-in reads the rows before the local part of o_proj is added into them.
        runLocal: (start, rows) =>
          addInto(
            local.attendProjected(
              layer,
              start,
              rows,
              rowsOf(hidden, h, start, rows),
              rowsOf(cos, half, start, rows),
              rowsOf(sin, half, start, rows),
            ),
            start,
            rows,
          ),
        collect: (remote, start, rows) => addInto(remote.channel.out, start, rows),
      },
      this.attentionRemotes(),
    );
  }

  /**
   * Runs the layer's MLP on the residual rows `hidden` [numTokens, hidden] (attention already
   * added) and adds its whole output (every shard's slice) into them in place. Every shard
   * normalises and routes the rows itself; returns rank 0's routing (null for a dense layer).
   */
  runMlp(layer: number, hidden: Float32Array, numTokens: number): RoutingResult | null {
    const h = this.local.hiddenSize;
    const gating = this.local.layers[layer].gating;
    const k = gating?.topK ?? 0;
    const route = gating && { expertIds: new Int32Array(numTokens * k), weights: new Float32Array(numTokens * k) };
    let checksum = 0; // of rank 0's routing of the current chunk
    this.fanOut(numTokens, this.chunkRows, {
      send: (remote, start, rows) => {
        remote.channel.x.set(hidden.subarray(start * h, (start + rows) * h));
        post(remote, { kind: JOB.mlp, rows, layer });
      },
      runLocal: (start, rows) => {
        const rowsOf = hidden.subarray(start * h, (start + rows) * h);
        const chunk = runFeedForward(this.local, { layer, hidden: rowsOf, numTokens: rows }, rowsOf);
        checksum = routingChecksum(chunk);
        if (route && chunk) {
          route.expertIds.set(chunk.expertIds, start * k);
          route.weights.set(chunk.weights, start * k);
        }
      },
      collect: (remote, start, rows) => {
        if (remote.channel.ctrl[SLOT.routing] !== checksum)
          throw new ShardFailedError(`shard ${remote.rank} routed layer ${layer} differently from shard 0`);
        const partial = remote.channel.out;
        const offset = start * h;
        for (let i = 0; i < rows * h; i++) hidden[offset + i] += partial[i];
      },
    });
    return route;
  }

  /** Logits [numRows, vocabSize] for final hidden rows, each shard filling its columns. */
  lmHead(hidden: Float32Array, numRows: number): Float32Array {
    const h = this.local.hiddenSize;
    const vocab = this.manifest.spec.vocabSize;
    const logits = new Float32Array(numRows * vocab);
    const x = (start: number, rows: number) => hidden.subarray(start * h, (start + rows) * h);
    this.fanOut(numRows, Math.min(...this.remotes.map((r) => r.channel.lmHeadRows), numRows), {
      send: (remote, start, rows) => {
        remote.channel.x.set(x(start, rows));
        post(remote, { kind: JOB.lmHead, rows });
      },
      runLocal: (start, rows) =>
        placeColumns(
          logits,
          vocab,
          start,
          rows,
          runLmHeadShard(this.local, x(start, rows), rows),
          this.local.vocabStart,
          this.local.vocabEnd,
        ),
      collect: (remote, start, rows) => placeColumns(logits, vocab, start, rows, remote.channel.out, remote.vocabStart, remote.vocabEnd),
    });
    return logits;
  }

  /**
   * Runs one job on every shard, chunk by chunk: hand each remote its chunk, do rank 0's part
   * while they work, then take each remote's answer.
   */
  private fanOut(numRows: number, rowsPerChunk: number, job: FanOutJob, remotes = this.remotes): void {
    for (let start = 0; start < numRows; start += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, numRows - start);
      for (const remote of remotes) job.send(remote, start, rows);
      job.runLocal(start, rows);
      for (const remote of remotes) {
        const waited = waitFor(remote);
        this.handoffWaits?.push(waited);
        job.collect(remote, start, rows);
      }
    }
  }

  private attentionRemotes(): Remote[] {
    return this.remotes.filter((r) => r.plans !== null);
  }

  /**
   * Stops every shard and waits for its thread to release its sessions and exit: terminating
   * a thread inside ONNX Runtime's session teardown can abort the whole process.
   */
  async release(): Promise<void> {
    for (const s of this.local.all()) s.release();
    await Promise.all(
      this.remotes.map(async (remote) => {
        remote.plans?.close();
        // A shard that exited or stopped answering has nothing to release in order.
        if (remote.failure !== null) {
          await remote.worker.terminate();
          return;
        }
        const exited = new Promise<void>((resolve) => remote.worker.once('exit', () => resolve()));
        post(remote, { kind: JOB.stop, rows: 0 });
        const timeout = setTimeout(() => void remote.worker.terminate(), SHARD_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timeout);
      }),
    );
  }
}

async function startRemote(
  dir: string,
  manifest: Manifest,
  rank: number,
  settings: SessionSettings,
  kernel: WebAssembly.Module | null,
  channel: ShardChannel,
): Promise<Remote> {
  const { port1, port2 } = new MessageChannel();
  // A compiled WebAssembly.Module crosses to the worker as is: nothing is assembled twice.
  const workerData: ShardWorkerData = { dir, manifest, rank, settings, kernel, buffers: channel.buffers, plans: port2 };
  const worker = new Worker(WORKER_ENTRY, { argv: [SHARD_ENTRY], workerData, transferList: [port2] });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m: { type: string; message?: string }) =>
      m.type === 'ready' ? resolve() : reject(new ShardFailedError(`shard ${rank} failed to start: ${m.message}`)),
    );
    worker.once('error', (err) => reject(new ShardFailedError(`shard ${rank} failed to start: ${err.message}`)));
  });
  const hasAttention = manifest.attention[rank].core !== null;
  if (!hasAttention) port1.close();
  const remote: Remote = {
    rank,
    worker,
    channel,
    seq: 0,
    plans: hasAttention ? port1 : null,
    planPending: false,
    vocabStart: manifest.lmHead[rank].start,
    vocabEnd: manifest.lmHead[rank].end,
    failure: null,
  };
  worker.on('exit', (code) => (remote.failure ??= `shard ${rank} exited (code ${code})`));
  worker.on('error', (err) => (remote.failure ??= `shard ${rank} crashed: ${err.message}`));
  return remote;
}

function post(remote: Remote, job: JobSlots): void {
  if (remote.failure !== null && job.kind !== JOB.stop) throw new ShardFailedError(remote.failure);
  const { ctrl } = remote.channel;
  ctrl[SLOT.kind] = job.kind;
  ctrl[SLOT.rows] = job.rows;
  ctrl[SLOT.layer] = job.layer ?? 0;
  ctrl[SLOT.start] = job.start ?? 0;
  // The first attention job after beginStep reads the step's plan before it starts.
  ctrl[SLOT.plan] = job.kind === JOB.attention && remote.planPending ? 1 : 0;
  if (job.kind === JOB.attention) remote.planPending = false;
  Atomics.store(ctrl, SLOT.seq, ++remote.seq);
  Atomics.notify(ctrl, SLOT.seq);
}

/** Blocks until the remote finished its current job; throws its error if it had one. Returns the ms waited. */
function waitFor(remote: Remote): number {
  const { ctrl } = remote.channel;
  const started = performance.now();
  while (Atomics.load(ctrl, SLOT.done) !== remote.seq) {
    const waited = performance.now() - started;
    if (waited > SHARD_TIMEOUT_MS) {
      remote.failure = `shard ${remote.rank} did not answer within ${SHARD_TIMEOUT_MS} ms`;
      throw new ShardFailedError(remote.failure);
    }
    // The shard is usually a fraction of a millisecond behind: poll rather than pay a wake-up.
    if (waited > SPIN_MS) Atomics.wait(ctrl, SLOT.done, remote.seq - 1, 1000);
  }
  if (ctrl[SLOT.status] !== 0) {
    const message = remote.channel.readError();
    ctrl[SLOT.status] = 0;
    throw new ShardFailedError(`shard ${remote.rank} failed: ${message}`);
  }
  return performance.now() - started;
}

function placeColumns(
  logits: Float32Array,
  vocab: number,
  firstRow: number,
  rows: number,
  slice: Float32Array,
  from: number,
  to: number,
): void {
  const width = to - from;
  for (let r = 0; r < rows; r++) logits.set(slice.subarray(r * width, (r + 1) * width), (firstRow + r) * vocab + from);
}
