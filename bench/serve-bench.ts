// `npm run bench:serve`: the server under load. Starts `moe-server serve` on the bench model,
// drives it over real HTTP with streaming clients at each concurrency (a fixed mix of prompt
// and output lengths, every request generating exactly its output length), and probes
// /health throughout. Prints throughput, time to first token, inter-token latency, /health
// latency, KV cache use and preemptions per concurrency, with throughput and inter-token
// latency relative to concurrency 1 (the baseline, measured in the same run). Writes JSON
// under bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheDir } from '../models/compile.ts';
import { loadModelSpec } from '../models/registry.ts';
import { progressPrinter } from '../server/progress.ts';
import { ensureBenchModel } from './bench-model.ts';
import { type HealthProbe, probeHealth } from './health-probe.ts';
import { startServer } from './serve-process.ts';
import { type StreamRequest, type StreamTiming, timedStream } from './stream-client.ts';
import { median, percentile, printTable } from './table.ts';

export interface ServeBenchOptions {
  modelDir?: string;
  weights: 'fp32' | 'int4';
  concurrency: number[];
  /** Requests per concurrency level: max(minRequests, requestsPerClient x concurrency). */
  requestsPerClient: number;
  minRequests: number;
  cacheDir?: string;
  /** Extra `serve` flags (e.g. --max-batch-tokens 128). */
  serverArgs: string[];
}

/** The fixed mix, cycled: prompt lengths 32..256 tokens, outputs 64 or 128 tokens (bench:peer and bench:ceiling use it too). */
export const MIX_PROMPT_LENGTHS: readonly number[] = [32, 128, 256, 64];
export const MIX_OUTPUT_LENGTHS: readonly number[] = [64, 128, 128, 64, 128];

export function requestAt(index: number, vocabSize: number): StreamRequest {
  const length = MIX_PROMPT_LENGTHS[index % MIX_PROMPT_LENGTHS.length];
  // Distinct prompts (no shared prefix): every request pays its own prefill.
  const prompt = Array.from({ length }, (_, i) => 3 + ((index * 7919 + i * 104729) % (vocabSize - 3)));
  return { prompt, maxTokens: MIX_OUTPUT_LENGTHS[index % MIX_OUTPUT_LENGTHS.length] };
}

export interface LevelResult {
  concurrency: number;
  requests: number;
  failed: number;
  wallSeconds: number;
  outputTokensPerSecond: number;
  requestsPerSecond: number;
  ttftMs: { p50: number; p99: number };
  itlMs: { p50: number; p99: number };
  health: HealthProbe;
}

export async function runLevel(baseUrl: string, concurrency: number, numRequests: number, vocabSize: number): Promise<LevelResult> {
  const timings: StreamTiming[] = [];
  let next = 0;
  const health = probeHealth(baseUrl, 100);
  const started = performance.now();
  const client = async (): Promise<void> => {
    while (next < numRequests) timings.push(await timedStream(baseUrl, 'bench', requestAt(next++, vocabSize)));
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const wallSeconds = (performance.now() - started) / 1000;
  const probe = await health.stop();
  const ok = timings.filter((t) => t.error === null && t.chunkTimes.length > 0);
  const ttft = ok.map((t) => t.chunkTimes[0] - t.sentAt);
  const itl = ok.flatMap((t) => t.chunkTimes.slice(1).map((time, i) => time - t.chunkTimes[i]));
  const outputTokens = ok.reduce((n, t) => n + t.completionTokens, 0);
  return {
    concurrency,
    requests: numRequests,
    failed: timings.length - ok.length,
    wallSeconds,
    outputTokensPerSecond: outputTokens / wallSeconds,
    requestsPerSecond: ok.length / wallSeconds,
    ttftMs: { p50: median(ttft), p99: percentile(ttft, 0.99) },
    itlMs: { p50: median(itl), p99: percentile(itl, 0.99) },
    health: probe,
  };
}

export async function runServeBench(opts: ServeBenchOptions): Promise<number> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const modelDir = opts.modelDir ?? ensureBenchModel(cacheDir, progressPrinter('writing bench model'));
  const args = [
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
    ...opts.serverArgs,
  ];
  console.log(`starting moe-server serve ${args.join(' ')}`);
  const server = await startServer(args, (line) => /^(ready|compiling|loading)/.test(line) && console.log(`  server: ${line}`));
  const results: LevelResult[] = [];
  try {
    const { vocabSize } = loadModelSpec(modelDir).spec;
    await timedStream(server.baseUrl, 'bench', { prompt: [3, 4, 5], maxTokens: 4 }); // warm-up
    for (const concurrency of opts.concurrency) {
      const numRequests = Math.max(opts.minRequests, opts.requestsPerClient * concurrency);
      console.log(`concurrency ${concurrency}: ${numRequests} requests`);
      results.push(await runLevel(server.baseUrl, concurrency, numRequests, vocabSize));
    }
  } finally {
    const code = await server.stop();
    if (code !== 0) console.error(`the server exited with code ${code}`);
  }
  printResults(results);
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `serve-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ modelDir, options: opts, results }, null, 2));
  console.log(`wrote ${file}`);
  return results.some((r) => r.failed > 0) ? 1 : 0;
}

function printResults(results: LevelResult[]): void {
  const base = results.find((r) => r.concurrency === 1) ?? results[0];
  const ms = (v: number): string => v.toFixed(0);
  printTable(
    [
      'concurrency',
      'requests',
      'failed',
      'out tok/s',
      'vs c=1',
      'req/s',
      'TTFT p50',
      'TTFT p99',
      'ITL p50',
      'ITL p99',
      'ITL p50 vs c=1',
      '/health p99',
      'peak KV use',
      'preemptions',
    ],
    results.map((r) => [
      String(r.concurrency),
      String(r.requests),
      String(r.failed),
      r.outputTokensPerSecond.toFixed(1),
      `${(r.outputTokensPerSecond / base.outputTokensPerSecond).toFixed(2)}x`,
      r.requestsPerSecond.toFixed(2),
      ms(r.ttftMs.p50),
      ms(r.ttftMs.p99),
      ms(r.itlMs.p50),
      ms(r.itlMs.p99),
      `${(r.itlMs.p50 / base.itlMs.p50).toFixed(2)}x`,
      r.health.latencyMs.p99.toFixed(1),
      `${(100 * r.health.peakKvUsage).toFixed(0)}%`,
      String(r.health.preemptions),
    ]),
  );
  console.log('times in ms; ITL = gap between streamed chunks; /health probed every 100 ms during each level');
}
