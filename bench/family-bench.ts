// `moe-server bench --families ...`: one row per model family at comparable size (the 'bench'
// synthetic preset of each: hidden 1024, 8 layers, about 0.17B active parameters per token),
// compiled at one precision and timed in fresh child processes, round-robin over the families
// so machine-load drift spreads across all of them; medians are reported. The comparison
// that matters is decode time per active parameter against DeepSeekMoE, and for the MLA
// families the KV-cache bytes per token against a plain per-head K/V cache.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { compileModel, defaultCacheDir, defaultTensorParallel, type CompiledModel } from '../models/compile.ts';
import type { SyntheticFamily } from '../models/synthetic.ts';
import { kvBytesPerToken } from '../runtime/attention/kv-cache-shape.ts';
import { progressPrinter } from '../server/progress.ts';
import { activeParametersPerToken } from './active-bytes.ts';
import { ensureBenchModel } from './bench-model.ts';
import { timePrecisionInChild } from './model-bench.ts';
import { median, printTable } from './table.ts';

export interface FamilyBenchOptions {
  families: SyntheticFamily[];
  weights: WeightPrecision;
  promptTokens: number;
  decodeTokens: number;
  /** Round-robin rounds; each times every family once in a fresh process. */
  rounds: number;
  cacheDir?: string;
}

interface FamilyRow {
  family: SyntheticFamily;
  activeParams: number;
  prefillMs: number[];
  decodeStepMs: number[];
  kvBytes: number;
  plainKvBytes: number;
}

function prepare(family: SyntheticFamily, opts: FamilyBenchOptions, cacheDir: string): CompiledModel {
  const modelDir = ensureBenchModel(cacheDir, progressPrinter(`writing ${family} bench model`), family);
  return compileModel({
    modelDir,
    weights: opts.weights,
    cacheDir,
    tensorParallel: defaultTensorParallel(),
    onProgress: progressPrinter(`compiling ${family} ${opts.weights}`),
  });
}

export async function runFamilyBench(opts: FamilyBenchOptions): Promise<number> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const compiled = opts.families.map((family) => ({ family, compiled: prepare(family, opts, cacheDir) }));
  const rows: FamilyRow[] = compiled.map(({ family, compiled: c }) => {
    const { quantisable, router } = activeParametersPerToken(c.manifest.spec);
    const kv = kvBytesPerToken(c.manifest.spec);
    return { family, activeParams: quantisable + router, prefillMs: [], decodeStepMs: [], kvBytes: kv.cache, plainKvBytes: kv.plainKv };
  });
  for (let round = 0; round < opts.rounds; round++) {
    for (const [i, { compiled: c }] of compiled.entries()) {
      const t = await timePrecisionInChild({
        compiled: c,
        threads: availableParallelism(),
        promptTokens: opts.promptTokens,
        decodeTokens: opts.decodeTokens,
      });
      rows[i].prefillMs.push(...t.prefillMs);
      rows[i].decodeStepMs.push(...t.decodeStepMs);
      console.log(`round ${round + 1}/${opts.rounds} ${rows[i].family}: decode median ${median(t.decodeStepMs).toFixed(2)} ms/token`);
    }
  }
  printFamilyTable(rows, opts);
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `family-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ options: opts, threads: availableParallelism(), rows }, null, 2));
  console.log(`wrote ${file}`);
  return 0;
}

function printFamilyTable(rows: FamilyRow[], opts: FamilyBenchOptions): void {
  // Decode time per million active parameters: the per-parameter cost the issue compares.
  const perParam = (r: FamilyRow) => median(r.decodeStepMs) / (r.activeParams / 1e6);
  const base = rows.find((r) => r.family === 'deepseek');
  printTable(
    ['family', 'active M/token', 'prefill tok/s', 'decode ms/token', 'ms per 100M active', 'vs deepseek', 'KV B/token', 'plain KV B/token'],
    rows.map((r) => [
      r.family,
      (r.activeParams / 1e6).toFixed(1),
      (opts.promptTokens / (median(r.prefillMs) / 1000)).toFixed(1),
      median(r.decodeStepMs).toFixed(2),
      (100 * perParam(r)).toFixed(2),
      base ? `${(perParam(r) / perParam(base)).toFixed(2)}x` : '-',
      String(r.kvBytes),
      String(r.plainKvBytes),
    ]),
  );
}
