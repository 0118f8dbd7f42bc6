// A tensor-parallel shard's thread: opens its slices of the MLPs and the LM head, then
// serves jobs from rank 0 through shared memory until told to stop. It blocks in
// Atomics.wait between jobs: no event-loop turn sits between a job's arrival and its start.
import { parentPort, workerData } from 'node:worker_threads';
import type { SessionSettings } from '../../kernels/session.ts';
import type { Manifest } from '../../models/compile.ts';
import { openShardSessions, runAttentionInShard, runLmHeadShard, runMlpShard, type ShardSessions } from './mlp-shard.ts';
import { type ChannelBuffers, JOB, ShardChannel, SLOT } from './shard-channel.ts';

export interface ShardWorkerData {
  dir: string;
  manifest: Manifest;
  rank: number;
  settings: SessionSettings;
  buffers: ChannelBuffers;
}

function runJob(sessions: ShardSessions, channel: ShardChannel): void {
  const { ctrl } = channel;
  const rows = ctrl[SLOT.rows];
  const h = sessions.hiddenSize;
  // ONNX Runtime takes no views of shared memory as inputs: copy the rows out first.
  const x = channel.x.slice(0, rows * h);
  if (ctrl[SLOT.kind] === JOB.lmHead) {
    channel.out.set(runLmHeadShard(sessions, x, rows));
    return;
  }
  if (ctrl[SLOT.kind] === JOB.attnIn) {
    const half = channel.buffers.shape.headDim / 2;
    const cos = channel.rope.slice(0, rows * half);
    const sin = channel.rope.slice(rows * half, 2 * rows * half);
    const qkv = runAttentionInShard(sessions, ctrl[SLOT.layer], x, cos, sin, rows);
    if (qkv) channel.out.set(qkv);
    return;
  }
  const topK = ctrl[SLOT.routed];
  const out = channel.out.subarray(0, rows * h);
  out.fill(0);
  const route = topK > 0 ? { expertIds: channel.ids.subarray(0, rows * topK), weights: channel.weights.subarray(0, rows * topK) } : null;
  const numExperts = route ? sessions.layers[ctrl[SLOT.layer]].experts.length : 0;
  runMlpShard(sessions, { layer: ctrl[SLOT.layer], x, numTokens: rows, route, topK, numExperts }, out);
}

/**
 * Jobs of one step come about a millisecond apart (one per layer). Waking a blocked thread
 * can take longer than that on a virtual machine, so poll for a short while first and only
 * then block; between steps the thread sleeps.
 */
const SPIN_MS = 3;

function waitForJob(ctrl: Int32Array, seen: number): void {
  const until = performance.now() + SPIN_MS;
  while (Atomics.load(ctrl, SLOT.seq) === seen) {
    if (performance.now() > until) {
      Atomics.wait(ctrl, SLOT.seq, seen);
      return;
    }
  }
}

function serve(data: ShardWorkerData): void {
  const channel = new ShardChannel(data.buffers);
  const sessions = openShardSessions(data.dir, data.manifest, data.rank, data.settings);
  parentPort?.postMessage({ type: 'ready' });
  const { ctrl } = channel;
  let seen = 0;
  for (;;) {
    waitForJob(ctrl, seen);
    seen = Atomics.load(ctrl, SLOT.seq);
    if (ctrl[SLOT.kind] === JOB.stop) break;
    try {
      runJob(sessions, channel);
    } catch (err) {
      channel.writeError(err instanceof Error ? err.message : String(err));
    }
    Atomics.store(ctrl, SLOT.done, seen);
    Atomics.notify(ctrl, SLOT.done);
  }
  for (const session of sessions.all()) session.release();
}

try {
  serve(workerData as ShardWorkerData);
} catch (err) {
  parentPort?.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
}
