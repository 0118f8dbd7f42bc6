// Rank 0's view of tensor parallelism: its own shard sessions plus one worker thread per
// other rank. Each MLP stage and the LM head run on every rank at once, each over its slice
// of the weights; the slices' outputs are summed (MLPs) or laid side by side (logits).
// ONNX Runtime's intra-op pool cannot do this for us: without spinning, waking its threads
// costs more than the small matmuls of a decode step take; two threads with a slice each
// keep both cores busy.
import { Worker } from 'node:worker_threads';
import type { SessionSettings } from '../../kernels/session.ts';
import type { Manifest } from '../../models/compile.ts';
import { isMoe } from '../../models/spec.ts';
import { type MlpJob, openShardSessions, runAttentionInShard, runLmHeadShard, runMlpShard, type ShardSessions } from './mlp-shard.ts';
import type { ModelSpec } from '../../models/spec.ts';
import { CHUNK_ROWS, JOB, ShardChannel, SLOT } from './shard-channel.ts';
import type { ShardWorkerData } from './shard-worker.ts';

const WORKER_ENTRY = new URL('./worker-bootstrap.mjs', import.meta.url);
/** A shard that has not answered in this long is taken for dead: fail the step, don't hang. */
const SHARD_TIMEOUT_MS = 120_000;
/** How long rank 0 polls for a shard's answer before blocking. */
const SPIN_MS = 5;

export interface AttentionInputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
}

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
  /** Vocabulary columns [vocabStart, vocabEnd) of its logits. */
  vocabStart: number;
  vocabEnd: number;
  /** Set when the worker exited or stopped answering: later steps fail at once instead of waiting. */
  failure: string | null;
}

export class ShardGroup {
  private constructor(
    private readonly local: ShardSessions,
    private readonly remotes: Remote[],
    private readonly manifest: Manifest,
  ) {}

  static async open(dir: string, manifest: Manifest, settings: SessionSettings): Promise<ShardGroup> {
    const { spec } = manifest;
    const shape = {
      hiddenSize: spec.hiddenSize,
      headDim: spec.headDim,
      maxTopK: Math.max(1, ...spec.mlp.map((m) => (isMoe(m) ? m.numExpertsPerToken : 1))),
      maxVocabSlice: Math.max(...manifest.lmHead.map((s) => s.end - s.start)),
    };
    const ranks = Array.from({ length: manifest.tensorParallel - 1 }, (_, i) => i + 1);
    const remotes = await Promise.all(ranks.map((rank) => startRemote(dir, manifest, rank, settings, ShardChannel.create(shape))));
    return new ShardGroup(openShardSessions(dir, manifest, 0, settings), remotes, manifest);
  }

  /**
   * q [T, heads * headDim], k and v [T, kvHeads * headDim] of one layer, after RoPE: each
   * shard projects its own heads, rank 0 puts the heads back in order.
   */
  attentionIn(layer: number, hidden: Float32Array, cos: Float32Array, sin: Float32Array, numTokens: number): AttentionInputs {
    const { spec } = this.manifest;
    const { hiddenSize: h, numHeads, numKvHeads, headDim: d } = spec;
    const out: AttentionInputs = {
      q: new Float32Array(numTokens * numHeads * d),
      k: new Float32Array(numTokens * numKvHeads * d),
      v: new Float32Array(numTokens * numKvHeads * d),
    };
    const shards = this.manifest.layers[layer].shards;
    const widest = Math.max(...shards.map(({ kvHeads: [s, e] }) => (e - s) * (numHeads / numKvHeads + 2) * d));
    const half = d / 2;
    const rowsOf = (data: Float32Array, width: number, start: number, rows: number) => data.subarray(start * width, (start + rows) * width);
    this.fanOut(numTokens, Math.min(CHUNK_ROWS, ...this.remotes.map((r) => Math.floor(r.channel.out.length / widest))), {
      send: (remote, start, rows) => {
        remote.channel.x.set(rowsOf(hidden, h, start, rows));
        remote.channel.rope.set(rowsOf(cos, half, start, rows));
        remote.channel.rope.set(rowsOf(sin, half, start, rows), rows * half);
        post(remote, JOB.attnIn, rows, layer, 0);
      },
      runLocal: (start, rows) => {
        const x = rowsOf(hidden, h, start, rows);
        const local = runAttentionInShard(this.local, layer, x, rowsOf(cos, half, start, rows), rowsOf(sin, half, start, rows), rows);
        if (local) placeHeads(out, spec, shards[0].kvHeads, local, start, rows);
      },
      collect: (remote, start, rows) => placeHeads(out, spec, shards[remote.rank].kvHeads, remote.channel.out, start, rows),
    });
    return out;
  }

  /** Adds the layer's whole MLP output (every shard's slice) into `out` [numTokens, hidden]. */
  runMlp(job: MlpJob, out: Float32Array): void {
    const h = this.local.hiddenSize;
    const k = job.route ? job.topK : 0;
    const chunkOf = (start: number, rows: number): MlpJob => ({
      ...job,
      x: job.x.subarray(start * h, (start + rows) * h),
      numTokens: rows,
      route: job.route && {
        expertIds: job.route.expertIds.subarray(start * k, (start + rows) * k),
        weights: job.route.weights.subarray(start * k, (start + rows) * k),
      },
    });
    this.fanOut(job.numTokens, CHUNK_ROWS, {
      send: (remote, start, rows) => {
        const chunk = chunkOf(start, rows);
        remote.channel.x.set(chunk.x);
        if (chunk.route) {
          remote.channel.ids.set(chunk.route.expertIds);
          remote.channel.weights.set(chunk.route.weights);
        }
        post(remote, JOB.mlp, rows, job.layer, k);
      },
      runLocal: (start, rows) => runMlpShard(this.local, chunkOf(start, rows), out.subarray(start * h, (start + rows) * h)),
      collect: (remote, start, rows) => {
        const partial = remote.channel.out;
        const offset = start * h;
        for (let i = 0; i < rows * h; i++) out[offset + i] += partial[i];
      },
    });
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
        post(remote, JOB.lmHead, rows, 0, 0);
      },
      runLocal: (start, rows) =>
        placeColumns(logits, vocab, start, rows, runLmHeadShard(this.local, x(start, rows), rows), this.local.vocabStart, this.local.vocabEnd),
      collect: (remote, start, rows) => placeColumns(logits, vocab, start, rows, remote.channel.out, remote.vocabStart, remote.vocabEnd),
    });
    return logits;
  }

  /**
   * Runs one job on every shard, chunk by chunk: hand each remote its chunk, do rank 0's part
   * while they work, then take each remote's answer.
   */
  private fanOut(numRows: number, rowsPerChunk: number, job: FanOutJob): void {
    for (let start = 0; start < numRows; start += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, numRows - start);
      for (const remote of this.remotes) job.send(remote, start, rows);
      job.runLocal(start, rows);
      for (const remote of this.remotes) {
        waitFor(remote);
        job.collect(remote, start, rows);
      }
    }
  }

  release(): void {
    for (const s of this.local.all()) s.release();
    for (const remote of this.remotes) {
      post(remote, JOB.stop, 0, 0, 0);
      void remote.worker.terminate();
    }
  }
}

async function startRemote(dir: string, manifest: Manifest, rank: number, settings: SessionSettings, channel: ShardChannel): Promise<Remote> {
  const workerData: ShardWorkerData = { dir, manifest, rank, settings, buffers: channel.buffers };
  const worker = new Worker(WORKER_ENTRY, { argv: ['./shard-worker.ts'], workerData });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m: { type: string; message?: string }) =>
      m.type === 'ready' ? resolve() : reject(new ShardFailedError(`shard ${rank} failed to start: ${m.message}`)),
    );
    worker.once('error', (err) => reject(new ShardFailedError(`shard ${rank} failed to start: ${err.message}`)));
  });
  const remote: Remote = { rank, worker, channel, seq: 0, vocabStart: manifest.lmHead[rank].start, vocabEnd: manifest.lmHead[rank].end, failure: null };
  worker.on('exit', (code) => (remote.failure ??= `shard ${rank} exited (code ${code})`));
  worker.on('error', (err) => (remote.failure ??= `shard ${rank} crashed: ${err.message}`));
  return remote;
}

function post(remote: Remote, kind: number, rows: number, layer: number, routedTopK: number): void {
  if (remote.failure !== null && kind !== JOB.stop) throw new ShardFailedError(remote.failure);
  const { ctrl } = remote.channel;
  ctrl[SLOT.kind] = kind;
  ctrl[SLOT.rows] = rows;
  ctrl[SLOT.layer] = layer;
  ctrl[SLOT.routed] = routedTopK;
  Atomics.store(ctrl, SLOT.seq, ++remote.seq);
  Atomics.notify(ctrl, SLOT.seq);
}

/** Blocks until the remote finished its current job; throws its error if it had one. */
function waitFor(remote: Remote): void {
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
}

/** Copies one shard's packed [rows, q | k | v] output into the full q, k and v rows. */
function placeHeads(out: AttentionInputs, spec: ModelSpec, [kvStart, kvEnd]: [number, number], packed: Float32Array, firstRow: number, rows: number): void {
  if (kvEnd <= kvStart) return;
  const { numHeads, numKvHeads, headDim: d } = spec;
  const group = numHeads / numKvHeads;
  const qWidth = (kvEnd - kvStart) * group * d;
  const kvWidth = (kvEnd - kvStart) * d;
  const width = qWidth + 2 * kvWidth;
  for (let r = 0; r < rows; r++) {
    const src = r * width;
    const row = firstRow + r;
    out.q.set(packed.subarray(src, src + qWidth), row * numHeads * d + kvStart * group * d);
    out.k.set(packed.subarray(src + qWidth, src + qWidth + kvWidth), row * numKvHeads * d + kvStart * d);
    out.v.set(packed.subarray(src + qWidth + kvWidth, src + width), row * numKvHeads * d + kvStart * d);
  }
}

function placeColumns(logits: Float32Array, vocab: number, firstRow: number, rows: number, slice: Float32Array, from: number, to: number): void {
  const width = to - from;
  for (let r = 0; r < rows; r++) logits.set(slice.subarray(r * width, (r + 1) * width), (firstRow + r) * vocab + from);
}
