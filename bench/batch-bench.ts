// `npm run bench:batch`: `moe-server batch` against the served engine under the load of
// `npm run bench:serve`, on the bench model: the same requests (the serve benchmark's mix of
// prompt and output lengths, every request generating exactly its output length) sent by N
// streaming HTTP clients to `moe-server serve`, and written as a batch file run by
// `moe-server batch` (in a child process; its model load is not timed, as the server's
// start is not). The two take turns, rounds alternating which goes first, since this shared
// machine's load drifts. Prints generated tokens/s per run, medians with min/max, and batch
// relative to the best concurrency, and the CPU time each way spends per generated token (the
// serving or batch process, all its threads: less sensitive to other tenants' load than the
// wall clock); writes JSON under bench/results/.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultCacheDir } from '../models/compile.ts';
import { loadModelSpec } from '../models/registry.ts';
import { progressPrinter } from '../server/progress.ts';
import { ensureBenchModel } from './bench-model.ts';
import { runOfflineInChild } from './offline-child.ts';
import { requestAt, runLevel } from './serve-bench.ts';
import { startServer } from './serve-process.ts';
import { timedStream } from './stream-client.ts';
import { median, printTable } from './table.ts';

export interface BatchBenchOptions {
  modelDir?: string;
  weights: 'fp32' | 'int4';
  cacheDir?: string;
  rounds: number;
  /** Served concurrencies to compare with; the best of them is the bar. */
  concurrency: number[];
  numRequests: number;
}

/** One run: generated tokens per second of wall time, and CPU milliseconds per generated token. */
interface Rate {
  tokensPerSecond: number;
  cpuMsPerToken: number;
}

/** A process's CPU time so far (every thread), from /proc: utime + stime in clock ticks (100 a second on Linux). */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function serveRun(args: string[], concurrency: number[], numRequests: number, vocabSize: number): Promise<Rate[]> {
  const server = await startServer(args);
  const pid = server.child.pid!;
  try {
    await timedStream(server.baseUrl, 'bench', { prompt: [3, 4, 5], maxTokens: 4 }); // warm-up
    const rates: Rate[] = [];
    for (const c of concurrency) {
      const cpuBefore = cpuSecondsOf(pid);
      const level = await runLevel(server.baseUrl, c, numRequests, vocabSize);
      const tokens = level.outputTokensPerSecond * level.wallSeconds;
      rates.push({ tokensPerSecond: level.outputTokensPerSecond, cpuMsPerToken: (1000 * (cpuSecondsOf(pid) - cpuBefore)) / tokens });
    }
    return rates;
  } finally {
    await server.stop();
  }
}

async function batchRun(work: string, flags: Record<string, string>, numRequests: number, vocabSize: number, round: number): Promise<Rate> {
  const input = join(work, `requests-${round}.jsonl`);
  const lines = Array.from({ length: numRequests }, (_, i) => {
    const { prompt, maxTokens } = requestAt(i, vocabSize);
    const body = { prompt, max_tokens: maxTokens, ignore_eos: true, temperature: 0 };
    return JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/completions', body });
  });
  writeFileSync(input, lines.join('\n') + '\n');
  const result = await runOfflineInChild({ kind: 'batch', flags, input, output: join(work, `results-${round}.jsonl`) });
  if (result.kind !== 'batch') throw new Error('unexpected child result');
  const { summary } = result;
  if (summary.numFailed > 0) throw new Error(`${summary.numFailed} batch requests failed`);
  return {
    tokensPerSecond: summary.completionTokens / summary.seconds,
    cpuMsPerToken: (1000 * result.cpuSeconds) / summary.completionTokens,
  };
}

const stats = (values: number[]): string =>
  `${median(values).toFixed(1)} (${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)})`;

function printResults(opts: BatchBenchOptions, served: Rate[][], batch: Rate[]): void {
  const rates = (runs: Rate[]): number[] => runs.map((r) => r.tokensPerSecond);
  const cpu = (runs: Rate[]): number[] => runs.map((r) => r.cpuMsPerToken);
  const best = Math.max(...served.map((runs) => median(rates(runs))));
  const bestCpu = Math.min(...served.map((runs) => median(cpu(runs))));
  const row = (name: string, runs: Rate[]): string[] => [
    name,
    stats(rates(runs)),
    `${(median(rates(runs)) / best).toFixed(2)}x`,
    stats(cpu(runs)),
    `${(median(cpu(runs)) / bestCpu).toFixed(2)}x`,
  ];
  printTable(
    ['run', 'generated tok/s median (min-max)', 'vs best served', 'CPU ms/token median (min-max)', 'vs best served'],
    [...opts.concurrency.map((c, i) => row(`serve, ${c} streaming clients`, served[i])), row('batch', batch)],
  );
  console.log(
    `${opts.rounds} rounds of ${opts.numRequests} requests each (bench:serve's mix), ${opts.weights} weights, default engine settings`,
  );
}

export async function runBatchBench(opts: BatchBenchOptions): Promise<number> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const modelDir = opts.modelDir ?? ensureBenchModel(cacheDir, progressPrinter('writing bench model'));
  const { vocabSize } = loadModelSpec(modelDir).spec;
  const serveArgs = [
    '--model',
    modelDir,
    '--weights',
    opts.weights,
    '--cache-dir',
    cacheDir,
    '--served-model-name',
    'bench',
    '--max-queue',
    '1024',
  ];
  const flags = { model: modelDir, weights: opts.weights, 'cache-dir': cacheDir };
  const work = mkdtempSync(join(tmpdir(), 'moe-batch-bench-'));
  const served: Rate[][] = opts.concurrency.map(() => []);
  const batch: Rate[] = [];
  const show = (r: Rate): string => `${r.tokensPerSecond.toFixed(1)} tok/s (${r.cpuMsPerToken.toFixed(1)} CPU ms/token)`;
  try {
    for (let round = 0; round < opts.rounds; round++) {
      const runServe = async (): Promise<void> => {
        const rates = await serveRun(serveArgs, opts.concurrency, opts.numRequests, vocabSize);
        rates.forEach((rate, i) => served[i].push(rate));
      };
      const runBatch = async (): Promise<void> => void batch.push(await batchRun(work, flags, opts.numRequests, vocabSize, round));
      for (const step of round % 2 === 0 ? [runServe, runBatch] : [runBatch, runServe]) await step();
      const last = opts.concurrency.map((c, i) => `c=${c} ${show(served[i].at(-1)!)}`).join(', ');
      console.log(`round ${round + 1}/${opts.rounds}: serve ${last}; batch ${show(batch.at(-1)!)}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  printResults(opts, served, batch);
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `batch-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ modelDir, options: opts, served, batch }, null, 2));
  console.log(`wrote ${file}`);
  return 0;
}
