// `npm run bench:int4-blocks -- [--blocks 32,64] [--rounds 5]`: int4 block sizes against each
// other on the bench model. Accuracy: one prompt through the fp32 graphs and through each block
// size, every position's logits compared (top-1 agreement, mean and largest |logit difference|).
// Speed: prefill and batch-1 decode, each block size timed in a fresh child process per round
// and the rounds alternating which goes first, so a burst of another tenant's load on this
// shared machine slows one round of each side, not one side's whole run. Also the compiled
// bytes each block size writes.
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compileModel, defaultCacheDir, defaultTensorParallel, type CompiledModel } from '../models/compile.ts';
import { ModelRunner } from '../runtime/model-runner.ts';
import { openModelSessions } from '../runtime/model-sessions.ts';
import { argmax } from '../server/engine/sampler.ts';
import { progressPrinter } from '../server/progress.ts';
import { ensureBenchModel } from './bench-model.ts';
import { timePrecisionInChild } from './model-bench.ts';
import { soloCache } from './solo-cache.ts';
import { median, printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    blocks: { type: 'string', default: '32,64' },
    rounds: { type: 'string', default: '5' },
    'prompt-tokens': { type: 'string', default: '512' },
    'decode-tokens': { type: 'string', default: '64' },
  },
});
const blocks = values.blocks.split(',').map(Number);
const promptTokens = Number(values['prompt-tokens']);
const cacheDir = defaultCacheDir();
const modelDir = ensureBenchModel(cacheDir, progressPrinter('writing bench model'));
const tensorParallel = defaultTensorParallel();
const compile = (weights: 'fp32' | 'int4', int4BlockSize?: number): CompiledModel =>
  compileModel({ modelDir, weights, int4BlockSize, cacheDir, tensorParallel, onProgress: progressPrinter(`compiling ${weights}`) });
const fp32 = compile('fp32');
const int4 = blocks.map((block) => compile('int4', block));

/** Logits of every position of one prompt (the same prompt on every model). */
async function promptLogits(compiled: CompiledModel): Promise<Float32Array> {
  const sessions = await openModelSessions(compiled, { provider: 'cpu', intraOpThreads: availableParallelism() });
  try {
    const { size, newSequence } = soloCache(promptTokens);
    const vocab = compiled.manifest.spec.vocabSize;
    const prompt = Array.from({ length: promptTokens }, (_, i) => 3 + ((i * 7919 + 11) % (vocab - 3)));
    return new ModelRunner(sessions, size).step([{ tokens: prompt, cache: newSequence(), logits: 'all' }]).logits.slice();
  } finally {
    await sessions.release();
  }
}

function compare(reference: Float32Array, got: Float32Array, vocab: number): { agreement: number; meanAbs: number; maxAbs: number } {
  let agree = 0;
  let sum = 0;
  let max = 0;
  const rows = reference.length / vocab;
  for (let r = 0; r < rows; r++) {
    const a = reference.subarray(r * vocab, (r + 1) * vocab);
    const b = got.subarray(r * vocab, (r + 1) * vocab);
    if (argmax(a) === argmax(b)) agree++;
    for (let i = 0; i < vocab; i++) {
      const d = Math.abs(a[i] - b[i]);
      sum += d;
      max = Math.max(max, d);
    }
  }
  return { agreement: agree / rows, meanAbs: sum / reference.length, maxAbs: max };
}

const vocab = fp32.manifest.spec.vocabSize;
const reference = await promptLogits(fp32);
const accuracy: Array<ReturnType<typeof compare>> = [];
for (const compiled of int4) accuracy.push(compare(reference, await promptLogits(compiled), vocab));

const prefill: number[][] = blocks.map(() => []);
const decode: number[][] = blocks.map(() => []);
const rounds = Number(values.rounds);
for (let round = 0; round < rounds; round++) {
  for (let j = 0; j < blocks.length; j++) {
    const i = (round + j) % blocks.length;
    const t = await timePrecisionInChild({
      compiled: int4[i],
      threads: availableParallelism(),
      promptTokens,
      decodeTokens: Number(values['decode-tokens']),
    });
    prefill[i].push(promptTokens / (median(t.prefillMs) / 1000));
    decode[i].push(1000 / median(t.decodeStepMs));
    console.log(
      `round ${round + 1}/${rounds} block ${blocks[i]}: prefill ${prefill[i].at(-1)!.toFixed(1)}, decode ${decode[i].at(-1)!.toFixed(2)} tok/s`,
    );
  }
}

const range = (v: number[], digits: number): string =>
  `${median(v).toFixed(digits)} (${Math.min(...v).toFixed(digits)}-${Math.max(...v).toFixed(digits)})`;
const gib = (dir: string): string => (readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0) / 2 ** 30).toFixed(2);
console.log(
  `bench model, int4, tensor-parallel ${tensorParallel}; ${promptTokens}-token prompt; ${rounds} rounds, medians (min-max) of each round's median`,
);
printTable(
  [
    'block',
    'compiled GiB',
    'prefill tok/s',
    'decode tok/s',
    `top-1 vs fp32 (${reference.length / vocab} positions)`,
    'mean |dlogit|',
    'max |dlogit|',
  ],
  blocks.map((block, i) => [
    String(block),
    gib(int4[i].dir),
    range(prefill[i], 1),
    range(decode[i], 2),
    `${(accuracy[i].agreement * 100).toFixed(1)}%`,
    accuracy[i].meanAbs.toFixed(4),
    accuracy[i].maxAbs.toFixed(3),
  ]),
);
