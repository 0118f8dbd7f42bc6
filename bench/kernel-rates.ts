// ONNX Runtime's matmul rates on this machine: one linear layer timed on every core at once (a
// thread each, like the tensor-parallel shards), for fp32 weights (MatMul) and 4-bit weights
// (MatMulNBits, accuracy level 4), at given row counts. More weight copies than the caches
// hold, so weights stream from memory as in a step. Used by bench:ceiling and bench:scale.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { INT4_BLOCK_SIZE } from '../graphs/ops/quantize.ts';
import { median } from './table.ts';
import type { KernelRateJob, KernelRateWorkerData } from './kernel-rate-worker.ts';

const IN_FEATURES = 1024;
const OUT_FEATURES = 4096;
export const ROWS = [1, 2, 16, 256];
/** Copies per thread: fp32 copies take 16 MB each, 4-bit 2.5 MB; both exceed the caches. */
export const GRAPHS: Record<WeightPrecision, number> = { fp32: 8, int4: 16 };
export const ROUNDS = 7;

const WORKER_ENTRY = new URL('../runtime/worker-bootstrap.mjs', import.meta.url);

export interface Rate {
  precision: WeightPrecision;
  rows: number;
  /** Multiply-accumulates per second, all threads together. */
  macsPerSecond: number;
  /** Weight bytes streamed per second, all threads together. */
  bytesPerSecond: number;
}

/** The linear layer timed: its shape and, for int4, MatMulNBits' block size (the model's default when absent). */
export interface RateShape {
  inFeatures: number;
  outFeatures: number;
  int4BlockSize?: number;
}

export const CEILING_SHAPE: RateShape = { inFeatures: IN_FEATURES, outFeatures: OUT_FEATURES };

export async function measureRates(
  precision: WeightPrecision,
  threads: number,
  dir: string,
  shape: RateShape = CEILING_SHAPE,
  rowCounts: readonly number[] = ROWS,
): Promise<Rate[]> {
  const workerData = (rank: number): KernelRateWorkerData => ({
    precision,
    inFeatures: shape.inFeatures,
    outFeatures: shape.outFeatures,
    graphs: GRAPHS[precision],
    int4BlockSize: shape.int4BlockSize,
    dir: join(dir, `${precision}-${rank}`),
  });
  const workers = Array.from({ length: threads }, (_, rank) => {
    const data = workerData(rank);
    mkdirSync(data.dir);
    return new Worker(WORKER_ENTRY, { argv: [new URL('./kernel-rate-worker.ts', import.meta.url).href], workerData: data });
  });
  try {
    await Promise.all(workers.map((w) => once(w)));
    const rates: Rate[] = [];
    for (const rows of rowCounts) {
      const job: KernelRateJob = { rows, rounds: ROUNDS };
      const perThread = await Promise.all(workers.map((w) => once<number[]>(w, job)));
      // A round ends when the slowest thread ends, as a tensor-parallel stage does.
      const seconds = median(Array.from({ length: ROUNDS }, (_, r) => Math.max(...perThread.map((t) => t[r]))));
      const weightsPerThread = GRAPHS[precision] * shape.inFeatures * shape.outFeatures;
      const bytesPerWeight = precision === 'fp32' ? 4 : 0.5 + 4 / (shape.int4BlockSize ?? INT4_BLOCK_SIZE);
      rates.push({
        precision,
        rows,
        macsPerSecond: (threads * weightsPerThread * rows) / seconds,
        bytesPerSecond: (threads * weightsPerThread * bytesPerWeight) / seconds,
      });
    }
    return rates;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function once<T = unknown>(worker: Worker, message?: KernelRateJob): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    if (message) worker.postMessage(message);
  });
}
