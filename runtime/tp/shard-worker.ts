// A tensor-parallel shard's thread: opens its heads' attention and its slices of the MLPs and
// the LM head, then serves jobs from rank 0 through shared memory until told to stop. It
// blocks in Atomics.wait between jobs: no event-loop turn sits between a job's arrival and
// its start (which is also why step plans are read with receiveMessageOnPort).
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import type { SessionSettings } from '../../kernels/session.ts';
import type { Manifest } from '../../models/compile.ts';
import { runFeedForward } from '../moe/moe-layer.ts';
import { routingChecksum } from '../moe/router.ts';
import { openShardSessions, runLmHeadShard, type ShardSessions } from './shard-sessions.ts';
import type { StepSlot } from '../step-batch.ts';
import { type ChannelBuffers, JOB, ShardChannel, SLOT } from './shard-channel.ts';

export interface ShardWorkerData {
  dir: string;
  manifest: Manifest;
  rank: number;
  settings: SessionSettings;
  /** The WebAssembly attention kernel, or null to attend with ONNX Runtime alone. */
  kernel: WebAssembly.Module | null;
  buffers: ChannelBuffers;
  /** Where rank 0 posts each step's StepPlanMessage. */
  plans: MessagePort;
}

export interface StepPlanMessage {
  slots: StepSlot[];
}

/** How long a shard waits for a step plan that rank 0 posted before signalling the job. */
const PLAN_TIMEOUT_MS = 5_000;

function receivePlan(port: MessagePort): StepSlot[] {
  const until = performance.now() + PLAN_TIMEOUT_MS;
  let received = receiveMessageOnPort(port);
  while (!received) {
    if (performance.now() > until) throw new Error('no step plan arrived');
    received = receiveMessageOnPort(port);
  }
  // A step that failed after announcing its plan left that plan unread: the newest is this step's.
  for (let next = receiveMessageOnPort(port); next; next = receiveMessageOnPort(port)) received = next;
  return (received.message as StepPlanMessage).slots;
}

function runJob(sessions: ShardSessions, channel: ShardChannel, plans: MessagePort): void {
  const { ctrl } = channel;
  const rows = ctrl[SLOT.rows];
  const h = sessions.hiddenSize;
  if (ctrl[SLOT.kind] === JOB.kvCache) {
    sessions.attention.attachCache({ numBlocks: rows, blockSize: ctrl[SLOT.layer] });
    return;
  }
  // ONNX Runtime takes no views of shared memory as inputs: copy the rows out first.
  const x = channel.x.slice(0, rows * h);
  if (ctrl[SLOT.kind] === JOB.lmHead) {
    channel.out.set(runLmHeadShard(sessions, x, rows));
    return;
  }
  if (ctrl[SLOT.kind] === JOB.attention) {
    if (ctrl[SLOT.plan] !== 0) sessions.attention.beginStep(receivePlan(plans));
    const half = channel.buffers.shape.headDim / 2;
    const cos = channel.rope.slice(0, rows * half);
    const sin = channel.rope.slice(rows * half, 2 * rows * half);
    channel.out.set(sessions.attention.attendProjected(ctrl[SLOT.layer], ctrl[SLOT.start], rows, x, cos, sin));
    return;
  }
  const out = channel.out.subarray(0, rows * h);
  out.fill(0);
  ctrl[SLOT.routing] = routingChecksum(runFeedForward(sessions, { layer: ctrl[SLOT.layer], hidden: x, numTokens: rows }, out));
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
  const sessions = openShardSessions(data.dir, data.manifest, data.rank, data.settings, data.kernel);
  parentPort?.postMessage({ type: 'ready' });
  const { ctrl } = channel;
  let seen = 0;
  for (;;) {
    waitForJob(ctrl, seen);
    seen = Atomics.load(ctrl, SLOT.seq);
    if (ctrl[SLOT.kind] === JOB.stop) break;
    try {
      runJob(sessions, channel, data.plans);
    } catch (err) {
      channel.writeError(err instanceof Error ? err.message : String(err));
    }
    Atomics.store(ctrl, SLOT.done, seen);
    Atomics.notify(ctrl, SLOT.done);
  }
  for (const session of sessions.all()) session.release();
  // Nothing left holds the event loop: the thread exits by itself (ShardGroup.release waits for it).
  data.plans.close();
}

try {
  serve(workerData as ShardWorkerData);
} catch (err) {
  parentPort?.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
}
