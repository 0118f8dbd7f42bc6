// `moe-server bench` / `npm run bench`: prefill and batch-1 decode speed of the model runner
// for each weight precision, against the memory-bandwidth roofline measured in the same run
// (decode must read every active weight once per token, so bandwidth / active bytes bounds
// it). Each precision is timed in a fresh child process per round, and the rounds alternate
// the precisions: on a shared machine a burst of someone else's load then slows one round of
// each side, not all of one side, and the ratios between precisions hold. Prints a table and
// writes JSON under bench/results/.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
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
  /** Rounds, each one prefill and one decode run per precision in turn; medians are reported. */
  rounds?: number;
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
  const tensorParallel = opts.tensorParallel ?? defaultTensorParallel();
  const compiled = opts.weights.map((weights) =>
    compileModel({ modelDir, weights, cacheDir, tensorParallel, onProgress: progressPrinter(`compiling ${weights}`) }),
  );
  const timed = opts.weights.map((weights, i) => ({
    weights,
    spec: compiled[i].manifest.spec,
    timings: { prefillMs: [], decodeStepMs: [] } as PrecisionTimings,
  }));
  // The machines are shared: bandwidth drifts between runs. Measure it between the timed
  // rounds (never during them) and divide by the median of all readings.
  const readings = [await measureMemoryBandwidth(threads)];
  const rounds = opts.rounds ?? 3;
  for (let round = 0; round < rounds; round++) {
    // Rotate which precision goes first, so neither always runs right after a bandwidth reading.
    for (let j = 0; j < timed.length; j++) {
      const i = (round + j) % timed.length;
      const t = await timePrecisionInChild({
        compiled: compiled[i],
        threads,
        promptTokens: opts.promptTokens,
        decodeTokens: opts.decodeTokens,
      });
      timed[i].timings.prefillMs.push(...t.prefillMs);
      timed[i].timings.decodeStepMs.push(...t.decodeStepMs);
      console.log(`round ${round + 1}/${rounds} ${timed[i].weights}: decode median ${median(t.decodeStepMs).toFixed(2)} ms/token`);
    }
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

const CHILD_ENTRY = fileURLToPath(new URL('../runtime/worker-bootstrap.mjs', import.meta.url));

export function timePrecisionInChild(req: PrecisionRunRequest): Promise<PrecisionTimings> {
  const child = fork(CHILD_ENTRY, [new URL('./precision-run.ts', import.meta.url).href], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (timings: PrecisionTimings) => resolve(timings));
    child.once('exit', (code) => reject(new Error(`benchmark child exited with code ${code}`)));
    child.send(req);
  });
}

function summarise(
  weights: WeightPrecision,
  timings: PrecisionTimings,
  spec: ModelSpec,
  bandwidth: number,
  promptTokens: number,
): PrecisionResult {
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
