// `npm run bench:profile`: where one decode step's time goes, per stage, for the bench model
// (or --model), after a 512-token prompt, for one sequence or a batch of them (--batch N).
// Stages are timed by wrapping the runner's own calls, so the numbers are the engine's, not a
// re-implementation's. Prints a table, then how long
// rank 0 waited for the other shards at each hand-off (part of the stages' time).
import { parseArgs } from 'node:util';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { compileModel, defaultCacheDir, defaultTensorParallel } from '../models/compile.ts';
import { batchCaches } from './solo-cache.ts';
import { ModelRunner } from '../runtime/model-runner.ts';
import { openModelSessions, type ModelSessions } from '../runtime/model-sessions.ts';
import { progressPrinter } from '../server/progress.ts';
import { ensureBenchModel } from './bench-model.ts';
import { percentile, printTable } from './table.ts';

type Totals = Map<string, number>;

/** Replaces obj[method] with a version that adds its wall time to totals[label]. */
function timeCalls<T extends object, K extends keyof T>(obj: T, method: K, label: string, totals: Totals): void {
  const original = obj[method];
  if (typeof original !== 'function') throw new Error(`${String(method)} is not a method`);
  const wrapped = (...args: unknown[]): unknown => {
    const started = performance.now();
    try {
      return original.apply(obj, args);
    } finally {
      totals.set(label, (totals.get(label) ?? 0) + performance.now() - started);
    }
  };
  obj[method] = wrapped as T[K];
}

function instrument(sessions: ModelSessions, totals: Totals): void {
  timeCalls(sessions.shards, 'attention', 'q/k/v, attention, o_proj parts (all shards)', totals);
  for (const layer of sessions.layers) if (layer.attnOut) timeCalls(layer.attnOut, 'run', 'MLA: W_UV, o_proj, residual (shard 0)', totals);
  timeCalls(sessions.shards, 'runMlp', 'norm, router, MLPs and experts (all shards)', totals);
  timeCalls(sessions.shards, 'lmHead', 'LM head (all shards)', totals);
}

type Attention = 'wasm' | 'onnx';

/**
 * How rank 0's waits at the hand-offs are spread. On a noisy virtual machine most hand-offs
 * cost microseconds and a few cost milliseconds (a shard paused by garbage collection or the
 * scheduler), so the total says little without the tail.
 */
function describeHandoffs(label: string, waits: number[], steps: number): string {
  if (waits.length === 0) return `${label}: one shard, no hand-offs`;
  const sorted = waits.slice().sort((a, b) => a - b);
  const total = sorted.reduce((a, b) => a + b, 0);
  const longest = sorted.slice(Math.floor(sorted.length * 0.9)).reduce((a, b) => a + b, 0);
  const us = (ms: number) => `${Math.round(ms * 1000)} us`;
  return (
    `${label}: ${waits.length / steps} hand-offs a step; rank 0 waited p50 ${us(percentile(sorted, 0.5))}, ` +
    `p90 ${us(percentile(sorted, 0.9))}, max ${us(sorted[sorted.length - 1])}; the longest 10% hold ` +
    `${((100 * longest) / total).toFixed(0)}% of the waiting`
  );
}

async function profile(
  modelDir: string,
  weights: WeightPrecision,
  attention: Attention,
  promptTokens: number,
  steps: number,
  batch: number,
): Promise<{ rows: string[][]; handoffs: string }> {
  const compiled = compileModel({
    modelDir,
    weights,
    tensorParallel: defaultTensorParallel(),
    onProgress: progressPrinter(`compiling ${weights}`),
  });
  const sessions = await openModelSessions(compiled, { provider: 'cpu', intraOpThreads: 0, attention });
  try {
    const { size, sequences } = batchCaches(promptTokens + steps + 1, batch);
    const runner = new ModelRunner(sessions, size);
    sequences.forEach((cache, b) =>
      runner.step([{ tokens: Array.from({ length: promptTokens }, (_, i) => 3 + b + i), cache, logits: 'last' }]),
    );
    const totals: Totals = new Map();
    instrument(sessions, totals);
    const waits: number[] = [];
    sessions.shards.handoffWaits = waits;
    const started = performance.now();
    for (let i = 0; i < steps; i++) {
      runner.step(sequences.map((cache, b) => ({ tokens: [3 + ((i * 7919 + b * 104729) % 30000)], cache, logits: 'last' as const })));
    }
    const perStep = (performance.now() - started) / steps;
    sessions.shards.handoffWaits = null;
    const timed = [...totals.values()].reduce((a, b) => a + b, 0) / steps;
    const row = (label: string, ms: number) => [weights, attention, label, ms.toFixed(2), ((100 * ms) / perStep).toFixed(0)];
    const waited = waits.reduce((a, b) => a + b, 0);
    return {
      rows: [
        ...[...totals].map(([label, ms]) => row(label, ms / steps)),
        row('  of these: rank 0 waiting for the other shards', waited / steps),
        row('everything else (embedding, gating, JavaScript)', perStep - timed),
        [weights, attention, 'whole decode step (mean)', perStep.toFixed(2), '100'],
      ],
      handoffs: describeHandoffs(`${weights} ${attention}`, waits, steps),
    };
  } finally {
    await sessions.release();
  }
}

export async function runStepProfile(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      weights: { type: 'string', default: 'fp32,int4' },
      'prompt-tokens': { type: 'string', default: '512' },
      steps: { type: 'string', default: '32' },
      batch: { type: 'string', default: '1' },
      // The baseline in the same run: decode attention by ONNX Runtime's graphs.
      attention: { type: 'string', default: 'wasm,onnx' },
    },
  });
  const modelDir = values.model ?? ensureBenchModel(defaultCacheDir(), progressPrinter('writing bench model'));
  const rows: string[][] = [];
  const handoffs: string[] = [];
  for (const weights of String(values.weights).split(',')) {
    if (weights !== 'fp32' && weights !== 'int4') throw new Error(`--weights takes fp32 and/or int4, got "${weights}"`);
    for (const attention of String(values.attention).split(',')) {
      if (attention !== 'wasm' && attention !== 'onnx') throw new Error(`--attention takes wasm and/or onnx, got "${attention}"`);
      const result = await profile(
        modelDir,
        weights,
        attention,
        Number(values['prompt-tokens']),
        Number(values.steps),
        Number(values.batch),
      );
      rows.push(...result.rows);
      handoffs.push(result.handoffs);
    }
  }
  printTable(['weights', 'attention', 'stage', 'ms/step', '%'], rows);
  console.log('');
  for (const line of handoffs) console.log(line);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await runStepProfile(process.argv.slice(2));
