// Routed experts are nearly all of a MoE model's weights, and each compiles on its own: read
// its three matrices, quantise, write its graph (or one slice per tensor-parallel shard).
// compileModel hands them to worker threads, which take (layer, expert) jobs from a counter in
// shared memory while the calling thread builds the other graphs and then joins in. The
// calling thread blocks in Atomics.wait instead of awaiting messages, so compileModel stays
// synchronous for its callers; every file name is known beforehand, so the manifest never
// waits for a worker.
import { Worker } from 'node:worker_threads';
import { writeGraph } from '../graphs/onnx/write-graph.ts';
import type { LinearOptions } from '../graphs/ops/linear.ts';
import { buildSwiglu, shardRanges, sliceSwiglu } from '../graphs/layer-graphs.ts';
import { readSwiglu, type ReadWeight } from '../graphs/read-weights.ts';
import { CheckpointReader } from './checkpoint/safetensors.ts';
import { checkpointWeights } from './checkpoint/weight-source.ts';
import type { ModelWeightNames } from './family.ts';
import { loadModelSpec } from './registry.ts';
import { isMoe, type ModelSpec } from './spec.ts';

/** 'split': a slice of every expert per shard; 'replicate': every expert whole on every shard. */
export type ExpertPlacement = 'split' | 'replicate';

export interface ExpertCompileSettings {
  modelDir: string;
  /** Where the graphs go. */
  dir: string;
  linear: LinearOptions;
  tensorParallel: number;
  placement: ExpertPlacement;
}

export interface ExpertJob {
  layer: number;
  expert: number;
}

/** What writing an expert's graphs needs: the model, its weight names and a checkpoint reader. */
export interface ExpertWriter {
  spec: ModelSpec;
  names: ModelWeightNames;
  read: ReadWeight;
  settings: ExpertCompileSettings;
}

function expertPrefix(layer: number, expert: number): string {
  return `layer${String(layer).padStart(3, '0')}.expert${String(expert).padStart(3, '0')}`;
}

/**
 * The graph file of one expert for each tensor-parallel rank: the same whole graph on every
 * rank when replicated, else the rank's slice, null where its slice of the intermediate
 * units is empty.
 */
export function expertGraphFiles(spec: ModelSpec, job: ExpertJob, shards: number, placement: ExpertPlacement): Array<string | null> {
  const mlp = spec.mlp[job.layer];
  if (!isMoe(mlp)) throw new Error(`layer ${job.layer} has no routed experts`);
  const name = expertPrefix(job.layer, job.expert);
  if (placement === 'replicate' || shards <= 1) {
    const whole = placement === 'replicate' ? `${name}.onnx` : `${name}.tp0.onnx`;
    return Array.from({ length: shards }, () => whole);
  }
  return shardRanges(mlp.expertIntermediateSize, shards).map(([start, end], r) => (end > start ? `${name}.tp${r}.onnx` : null));
}

/** Reads, quantises and writes one expert's graphs; returns the number of files written. */
export function writeExpertGraphs(w: ExpertWriter, job: ExpertJob): number {
  const { spec, settings } = w;
  const mlp = spec.mlp[job.layer];
  const layerNames = w.names.layers[job.layer].mlp;
  if (!isMoe(mlp) || layerNames.kind !== 'moe') throw new Error(`layer ${job.layer} has no routed experts`);
  const weights = readSwiglu(w.read, layerNames.experts[job.expert], spec.hiddenSize, mlp.expertIntermediateSize);
  const files = expertGraphFiles(spec, job, settings.tensorParallel, settings.placement);
  const ranges = shardRanges(mlp.expertIntermediateSize, settings.tensorParallel);
  const whole = settings.placement === 'replicate' || settings.tensorParallel <= 1;
  let written = 0;
  for (const [rank, file] of files.entries()) {
    if (file === null || (whole && rank > 0)) continue;
    const part = whole ? weights : sliceSwiglu(weights, ranges[rank]);
    writeGraph(settings.dir, file, (b) => buildSwiglu(b, spec, part, settings.linear));
    written++;
  }
  return written;
}

/** Every routed expert of the model, layer by layer: the order the checkpoint stores them in. */
export function expertJobs(spec: ModelSpec): ExpertJob[] {
  return spec.mlp.flatMap((mlp, layer) =>
    isMoe(mlp) ? Array.from({ length: mlp.numRoutedExperts }, (_, expert) => ({ layer, expert })) : [],
  );
}

/** Files all the jobs write (for progress totals). */
export function expertFileCount(spec: ModelSpec, settings: ExpertCompileSettings): number {
  const whole = settings.placement === 'replicate' || settings.tensorParallel <= 1;
  return expertJobs(spec).reduce(
    (n, job) => n + (whole ? 1 : expertGraphFiles(spec, job, settings.tensorParallel, settings.placement).filter((f) => f).length),
    0,
  );
}

/** A reader of the checkpoint for expert jobs (each worker opens its own). */
export function openExpertWriter(settings: ExpertCompileSettings): ExpertWriter & { close(): void } {
  const { spec, family } = loadModelSpec(settings.modelDir);
  const names = family.weightNames(spec);
  const reader = CheckpointReader.open(settings.modelDir);
  try {
    return { spec, names, read: checkpointWeights(reader, spec, names, family.checkpointRenames), settings, close: () => reader.close() };
  } catch (err) {
    reader.close();
    throw err;
  }
}

/** Slots of the control array shared with the workers. */
export const CTRL = { next: 0, done: 1, failed: 2, cancel: 3 } as const;
/** ctrl[CTRL.failed]: a thread has claimed the failure slot; its message is written once it says FAILED. */
const FAILING = 1;
const FAILED = 2;
const ERROR_BYTES = 4096;

export interface ExpertPoolBuffers {
  /** [next job, files done, failed flag, cancel flag] */
  ctrl: SharedArrayBuffer;
  /** Pairs (layer, expert). */
  jobs: SharedArrayBuffer;
  /** The first failure's message, UTF-8, NUL-padded. */
  error: SharedArrayBuffer;
}

export interface ExpertWorkerData {
  settings: ExpertCompileSettings;
  buffers: ExpertPoolBuffers;
}

const WORKER_ENTRY = new URL('../runtime/worker-bootstrap.mjs', import.meta.url);
const EXPERT_WORKER = new URL('./compile-experts-worker.ts', import.meta.url).href;
/** How often the waiting thread reports progress. */
const PROGRESS_MS = 500;

/**
 * Runs every job: `workers` threads start taking jobs at once; this thread first runs
 * `ownWork` (the other graphs), then takes jobs too until none is left, and returns when all
 * are written. `onFiles(n)` is called on this thread for every n files the experts add. A
 * failure anywhere stops the others from taking new jobs and is thrown here. `ownWork` gets
 * `stopIfFailed`, which throws a worker's failure: calling it between steps stops this
 * thread's own work early instead of finishing graphs that will be thrown away.
 */
export function runExpertJobs(
  writer: ExpertWriter,
  jobs: ExpertJob[],
  workers: number,
  ownWork: (stopIfFailed: () => void) => void,
  onFiles: (count: number) => void,
): void {
  const buffers: ExpertPoolBuffers = {
    ctrl: new SharedArrayBuffer(4 * 4),
    jobs: new SharedArrayBuffer(4 * 2 * Math.max(1, jobs.length)),
    error: new SharedArrayBuffer(ERROR_BYTES),
  };
  const ctrl = new Int32Array(buffers.ctrl);
  const list = new Int32Array(buffers.jobs);
  jobs.forEach((job, i) => list.set([job.layer, job.expert], 2 * i));
  const workerData: ExpertWorkerData = { settings: writer.settings, buffers };
  const threads =
    jobs.length === 0 ? [] : Array.from({ length: workers }, () => new Worker(WORKER_ENTRY, { argv: [EXPERT_WORKER], workerData }));
  let reported = 0;
  const report = (): void => {
    const done = Atomics.load(ctrl, CTRL.done);
    if (done > reported) onFiles(done - reported);
    reported = done;
  };
  try {
    ownWork(() => throwIfFailed(ctrl, buffers.error));
    for (;;) {
      throwIfFailed(ctrl, buffers.error);
      const i = Atomics.add(ctrl, CTRL.next, 1);
      if (i >= jobs.length) break;
      const written = writeExpertGraphs(writer, { layer: list[2 * i], expert: list[2 * i + 1] });
      Atomics.add(ctrl, CTRL.done, written);
      report();
    }
    const total = expertFileCount(writer.spec, writer.settings);
    for (let done = Atomics.load(ctrl, CTRL.done); done < total; done = Atomics.load(ctrl, CTRL.done)) {
      throwIfFailed(ctrl, buffers.error);
      Atomics.wait(ctrl, CTRL.done, done, PROGRESS_MS);
      report();
    }
    throwIfFailed(ctrl, buffers.error);
    report();
  } catch (err) {
    Atomics.store(ctrl, CTRL.cancel, 1);
    throw err;
  } finally {
    // Idle workers have returned already; a cancelled one stops at its next job.
    for (const thread of threads) void thread.terminate();
  }
}

function throwIfFailed(ctrl: Int32Array, error: SharedArrayBuffer): void {
  if (Atomics.load(ctrl, CTRL.failed) !== FAILED) return;
  const bytes = new Uint8Array(error).slice();
  const end = bytes.indexOf(0);
  throw new Error(`compiling an expert failed: ${new TextDecoder().decode(bytes.subarray(0, end < 0 ? bytes.length : end))}`);
}

/** Records the first failure for the calling thread (later ones are dropped). */
export function recordFailure(buffers: ExpertPoolBuffers, err: unknown): void {
  const ctrl = new Int32Array(buffers.ctrl);
  if (Atomics.compareExchange(ctrl, CTRL.failed, 0, FAILING) !== 0) return;
  const text = new TextEncoder().encode(err instanceof Error ? err.message : String(err)).subarray(0, ERROR_BYTES - 1);
  new Uint8Array(buffers.error).set(text);
  Atomics.store(ctrl, CTRL.failed, FAILED);
  Atomics.notify(ctrl, CTRL.done);
}
