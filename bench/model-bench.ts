// `moe-server bench` / `npm run bench`: prefill and batch-1 decode speed of the model runner
// for each weight precision, against the memory-bandwidth roofline measured in the same run
// (decode must read every active weight once per token, so bandwidth / active bytes bounds
// it). Each precision is timed in a fresh child process. Prints a table and writes JSON
// under bench/results/.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WeightPrecision } from '../kernels/ops/linear.ts';
import { compileModel, defaultCacheDir, defaultTensorParallel } from '../models/compile.ts';
import type { ModelSpec } from '../models/spec.ts';
import type { PrecisionRunRequest, PrecisionTimings } from './precision-run.ts';
import { progressPrinter } from '../server/progress.ts';
import { ensureBenchModel } from './bench-model.ts';
import { activeWeightBytesPerToken } from './active-bytes.ts';
import { measureMemoryBandwidth } from './memory-bandwidth.ts';
import { median, printTable } from './table.ts';

export interface ModelBenchOptions {
  modelDir?: string;
  weights: WeightPrecision[];
  promptTokens: number;
  decodeTokens: number;
  cacheDir?: string;
  /** Tensor-parallel shards; default defaultTensorParallel(). */
  tensorParallel?: number;
  /** Repetitions of prefill and of the decode run; medians are reported. */
  runs?: number;
}

interface PrecisionResult {
  weights: WeightPrecision;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  decodeMsPerToken: number;
  activeBytesPerToken: number;
  rooflineTokensPerSecond: number;
  fractionOfRoofline: number;
}

export async function runModelBench(opts: ModelBenchOptions): Promise<number> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const modelDir = opts.modelDir ?? ensureBenchModel(cacheDir, progressPrinter('writing bench model'));
  const threads = availableParallelism();
  // The machines are shared: bandwidth drifts between runs. Measure it between the timed
  // runs (never during them) and divide by the median of all readings.
  const readings = [await measureMemoryBandwidth(threads)];
  const timed: Array<{ weights: WeightPrecision; timings: PrecisionTimings; spec: ModelSpec }> = [];
  for (const weights of opts.weights) {
    timed.push({ weights, ...(await timePrecision(modelDir, cacheDir, weights, threads, opts)) });
    readings.push(await measureMemoryBandwidth(threads));
  }
  const bandwidth = median(readings.map((r) => r.bytesPerSecond));
  const gbps = readings.map((r) => (r.bytesPerSecond / 1e9).toFixed(1)).join(', ');
  console.log(`memory read bandwidth (memcmp, ${threads} threads): readings ${gbps} GB/s; median ${(bandwidth / 1e9).toFixed(1)} GB/s`);
  const results = timed.map((t) => summarise(t.weights, t.timings, t.spec, bandwidth, opts.promptTokens));
  const fp32 = results.find((r) => r.weights === 'fp32');
  printTable(
    ['weights', 'prefill tok/s', 'decode tok/s', 'ms/token', 'active MB/token', 'roofline tok/s', '% of roofline', 'decode vs fp32'],
    results.map((r) => [
      r.weights,
      r.prefillTokensPerSecond.toFixed(1),
      r.decodeTokensPerSecond.toFixed(1),
      r.decodeMsPerToken.toFixed(2),
      (r.activeBytesPerToken / 1e6).toFixed(1),
      r.rooflineTokensPerSecond.toFixed(1),
      (100 * r.fractionOfRoofline).toFixed(0),
      fp32 ? `${(r.decodeTokensPerSecond / fp32.decodeTokensPerSecond).toFixed(2)}x` : '-',
    ]),
  );
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `model-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ modelDir, threads, bandwidthReadings: readings, bandwidth, options: opts, results }, null, 2));
  console.log(`wrote ${file}`);
  return 0;
}

const CHILD_ENTRY = fileURLToPath(new URL('../server/engine/worker-bootstrap.mjs', import.meta.url));

export function timePrecisionInChild(req: PrecisionRunRequest): Promise<PrecisionTimings> {
  const child = fork(CHILD_ENTRY, ['../../bench/precision-run.ts'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (timings: PrecisionTimings) => resolve(timings));
    child.once('exit', (code) => reject(new Error(`benchmark child exited with code ${code}`)));
    child.send(req);
  });
}

async function timePrecision(
  modelDir: string,
  cacheDir: string,
  weights: WeightPrecision,
  threads: number,
  opts: ModelBenchOptions,
): Promise<{ timings: PrecisionTimings; spec: ModelSpec }> {
  const tensorParallel = opts.tensorParallel ?? defaultTensorParallel();
  const compiled = compileModel({ modelDir, weights, cacheDir, tensorParallel, onProgress: progressPrinter(`compiling ${weights}`) });
  const timings = await timePrecisionInChild({
    compiled,
    threads,
    promptTokens: opts.promptTokens,
    decodeTokens: opts.decodeTokens,
    runs: opts.runs ?? 3,
  });
  return { timings, spec: compiled.manifest.spec };
}

function summarise(weights: WeightPrecision, timings: PrecisionTimings, spec: ModelSpec, bandwidth: number, promptTokens: number): PrecisionResult {
  const msPerToken = median(timings.decodeStepMs);
  const activeBytes = activeWeightBytesPerToken(spec, weights);
  const roofline = bandwidth / activeBytes;
  const decodeTokensPerSecond = 1000 / msPerToken;
  return {
    weights,
    prefillTokensPerSecond: promptTokens / (median(timings.prefillMs) / 1000),
    decodeTokensPerSecond,
    decodeMsPerToken: msPerToken,
    activeBytesPerToken: activeBytes,
    rooflineTokensPerSecond: roofline,
    fractionOfRoofline: decodeTokensPerSecond / roofline,
  };
}
