// `npm run bench:profile`: where one decode step's time goes, per stage, for the bench model
// (or --model), after a 512-token prompt, for one sequence or a batch of them (--batch N). Stages are timed by wrapping the runner's own calls,
// so the numbers are the engine's, not a re-implementation's. Prints a table.
import { parseArgs } from 'node:util';
import type { WeightPrecision } from '../kernels/ops/linear.ts';
import { compileModel, defaultCacheDir, defaultTensorParallel } from '../models/compile.ts';
import { batchCaches } from './solo-cache.ts';
import { ModelRunner } from '../server/engine/model-runner.ts';
import { openModelSessions, type ModelSessions } from '../server/engine/model-sessions.ts';
import { progressPrinter } from '../server/progress.ts';
import { ensureBenchModel } from './bench-model.ts';
import { printTable } from './table.ts';

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

async function profile(modelDir: string, weights: WeightPrecision, attention: Attention, promptTokens: number, steps: number, batch: number): Promise<string[][]> {
  const compiled = compileModel({ modelDir, weights, tensorParallel: defaultTensorParallel(), onProgress: progressPrinter(`compiling ${weights}`) });
  const sessions = await openModelSessions(compiled, { provider: 'cpu', intraOpThreads: 0, attention });
  try {
    const { size, sequences } = batchCaches(promptTokens + steps + 1, batch);
    const runner = new ModelRunner(sessions, size);
    sequences.forEach((cache, b) => runner.step([{ tokens: Array.from({ length: promptTokens }, (_, i) => 3 + b + i), cache, logits: 'last' }]));
    const totals: Totals = new Map();
    instrument(sessions, totals);
    const started = performance.now();
    for (let i = 0; i < steps; i++) {
      runner.step(sequences.map((cache, b) => ({ tokens: [3 + ((i * 7919 + b * 104729) % 30000)], cache, logits: 'last' as const })));
    }
    const perStep = (performance.now() - started) / steps;
    const timed = [...totals.values()].reduce((a, b) => a + b, 0) / steps;
    return [
      ...[...totals].map(([label, ms]) => [weights, attention, label, (ms / steps).toFixed(2), ((100 * ms) / steps / perStep).toFixed(0)]),
      [weights, attention, 'everything else (embedding, gating, JavaScript)', (perStep - timed).toFixed(2), ((100 * (perStep - timed)) / perStep).toFixed(0)],
      [weights, attention, 'whole decode step (mean)', perStep.toFixed(2), '100'],
    ];
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
  for (const weights of String(values.weights).split(',')) {
    if (weights !== 'fp32' && weights !== 'int4') throw new Error(`--weights takes fp32 and/or int4, got "${weights}"`);
    for (const attention of String(values.attention).split(',')) {
      if (attention !== 'wasm' && attention !== 'onnx') throw new Error(`--attention takes wasm and/or onnx, got "${attention}"`);
      rows.push(...(await profile(modelDir, weights, attention, Number(values['prompt-tokens']), Number(values.steps), Number(values.batch))));
    }
  }
  printTable(['weights', 'attention', 'stage', 'ms/step', '%'], rows);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await runStepProfile(process.argv.slice(2));
