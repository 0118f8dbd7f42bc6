// `npm run bench:ceiling`: how fast ONNX Runtime's matmul kernels run on this machine, and the
// speeds they allow the model at best. One linear layer shape (hidden 1024 -> 4096) is timed
// on every core at once (a thread each, like the tensor-parallel shards), for fp32 weights
// (MatMul) and 4-bit weights (MatMulNBits, accuracy level 4), at the row counts a step sees:
// 1 (batch-1 decode), 2 (a routed expert at batch 16), 16 (a batch-16 decode step's dense
// parts) and 256 (a prefill chunk). The read bandwidth is measured in the same run.
//
// The ceilings assume everything that is not a matmul costs nothing (attention, gating,
// norms, thread hand-offs) and that every matmul of a kind runs at the rate measured here:
// no real step can beat them, so a target above a ceiling cannot be met on this machine
// with these kernels.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { defaultCacheDir } from '../models/compile.ts';
import { loadModelSpec } from '../models/registry.ts';
import { activeParametersPerToken, activeWeightBytesPerToken } from './active-bytes.ts';
import { ensureBenchModel } from './bench-model.ts';
import { measureMemoryBandwidth } from './memory-bandwidth.ts';
import { median, printTable } from './table.ts';
import type { KernelRateJob, KernelRateWorkerData } from './kernel-rate-worker.ts';

const IN_FEATURES = 1024;
const OUT_FEATURES = 4096;
const ROWS = [1, 2, 16, 256];
/** Copies per thread: fp32 copies take 16 MB each, 4-bit 2.5 MB; both exceed the caches. */
const GRAPHS: Record<WeightPrecision, number> = { fp32: 8, int4: 16 };
const ROUNDS = 7;
/** bench:serve's request mix (bench/serve-bench.ts), averaged. */
const MIX_PROMPT_TOKENS = (32 + 128 + 256 + 64) / 4;
const MIX_OUTPUT_TOKENS = (64 + 128 + 128 + 64 + 128) / 5;

const WORKER_ENTRY = new URL('../runtime/worker-bootstrap.mjs', import.meta.url);

interface Rate {
  precision: WeightPrecision;
  rows: number;
  /** Multiply-accumulates per second, all threads together. */
  macsPerSecond: number;
  /** Weight bytes streamed per second, all threads together. */
  bytesPerSecond: number;
}

async function measureRates(precision: WeightPrecision, threads: number, dir: string): Promise<Rate[]> {
  const workerData = (rank: number): KernelRateWorkerData => ({
    precision,
    inFeatures: IN_FEATURES,
    outFeatures: OUT_FEATURES,
    graphs: GRAPHS[precision],
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
    for (const rows of ROWS) {
      const job: KernelRateJob = { rows, rounds: ROUNDS };
      const perThread = await Promise.all(workers.map((w) => once<number[]>(w, job)));
      // A round ends when the slowest thread ends, as a tensor-parallel stage does.
      const seconds = median(Array.from({ length: ROUNDS }, (_, r) => Math.max(...perThread.map((t) => t[r]))));
      const weightsPerThread = GRAPHS[precision] * IN_FEATURES * OUT_FEATURES;
      const bytesPerWeight = precision === 'fp32' ? 4 : 0.5 + 4 / 32;
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

async function main(): Promise<void> {
  const threads = Math.min(2, availableParallelism());
  const spec = loadModelSpec(ensureBenchModel(defaultCacheDir())).spec;
  const dir = mkdtempSync(join(tmpdir(), 'moe-kernel-ceiling-'));
  try {
    const rates = [...(await measureRates('fp32', threads, dir)), ...(await measureRates('int4', threads, dir))];
    const bandwidth = (await measureMemoryBandwidth(threads)).bytesPerSecond;
    printTable(
      ['weights', 'rows', 'GMAC/s (all threads)', 'weight GB/s'],
      rates.map((r) => [r.precision, String(r.rows), (r.macsPerSecond / 1e9).toFixed(1), (r.bytesPerSecond / 1e9).toFixed(1)]),
    );
    console.log(`threads: ${threads}; read bandwidth (memcmp, same run): ${(bandwidth / 1e9).toFixed(1)} GB/s\n`);

    const rate = (precision: WeightPrecision, rows: number) => rates.find((r) => r.precision === precision && r.rows === rows)!;
    const { quantisable, router } = activeParametersPerToken(spec);
    const macsPerToken = quantisable + router;
    const lmHeadMacs = spec.vocabSize * spec.hiddenSize;
    const fp32Bytes = activeWeightBytesPerToken(spec, 'fp32');
    const best = (rows: number) => Math.max(rate('fp32', rows).macsPerSecond, rate('int4', rows).macsPerSecond);
    // Decode at batch 16: all matmuls at the 16-row rate (routed experts see ~2 rows: slower).
    const batch16StepMs = ((16 * macsPerToken) / best(16)) * 1000;
    // One request of the load mix: its prompt at the prefill rate (no LM head but the last row),
    // its output at the batch-16 decode rate.
    const requestSeconds = (MIX_PROMPT_TOKENS * (macsPerToken - lmHeadMacs)) / best(256) + (MIX_OUTPUT_TOKENS * macsPerToken) / best(16);
    printTable(
      ['ceiling (bench model, matmuls only, at the rates above)', 'value'],
      [
        [
          'fp32 batch-1 decode: % of the read-bandwidth roofline',
          `${((100 * rate('fp32', 1).bytesPerSecond) / bandwidth).toFixed(0)}% ` +
            `(${((fp32Bytes / rate('fp32', 1).bytesPerSecond) * 1000).toFixed(1)} ms/token)`,
        ],
        ['int4 batch-1 decode: ms/token', ((macsPerToken / rate('int4', 1).macsPerSecond) * 1000).toFixed(1)],
        ['batch-16 decode step: ms (= inter-token latency at 16 streams)', batch16StepMs.toFixed(1)],
        [
          `load mix (${MIX_PROMPT_TOKENS}-token prompts, ${MIX_OUTPUT_TOKENS.toFixed(1)}-token outputs): output tok/s`,
          (MIX_OUTPUT_TOKENS / requestSeconds).toFixed(0),
        ],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
