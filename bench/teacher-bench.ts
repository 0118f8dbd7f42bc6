// `npm run bench:teacher`: how fast the teacher engine scores. On the bench model, in rounds
// that take turns (a burst of someone else's load on this shared machine then slows one run
// of each kind, not all of one), each run a fresh child process:
//   prefill   the runner alone over one 512-token prompt, as `moe-server bench` measures it
//             (logits of the last position only), and the same prefill computing every
//             position's logits, as scoring must: the output projection over the vocabulary
//             then runs once per token instead of once per prompt;
//   score     `distill` over conversations (teacher-forced, top-k K, no generation): input
//             tokens scored per second (every token of a conversation goes through the prefill;
//             response tokens are the assistant turns);
//   generate  `distill --generate`: the model answers each conversation, then the whole is
//             scored; generated and scored tokens per second over the job.
// Prints medians with min/max and scoring relative to the prefill speeds, as the median of the
// ratios within each round (a burst of load then moves both sides of a ratio together), and
// writes JSON under bench/results/.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileModel, defaultCacheDir, defaultTensorParallel } from '../models/compile.ts';
import type { DistillSummary } from '../server/distill/distill-job.ts';
import { progressPrinter } from '../server/progress.ts';
import { ensureBenchModel } from './bench-model.ts';
import { timePrecisionInChild } from './model-bench.ts';
import { runOfflineInChild } from './offline-child.ts';
import { median, printTable } from './table.ts';

export interface TeacherBenchOptions {
  modelDir?: string;
  weights: 'fp32' | 'int4';
  cacheDir?: string;
  rounds: number;
  topK: number;
  /** Conversations scored per run, and answered per --generate run. */
  numConversations: number;
  numGenerate: number;
  generateTokens: number;
  /** Extra engine flags for the jobs, e.g. {"max-batch-tokens": "512"}. */
  engineFlags: Record<string, string>;
}

const WORDS = (
  'the model reads every token of the prompt once and the teacher scores each answer so that a student can learn ' +
  'from the whole distribution rather than the sampled text alone while experts route tokens across layers in parallel'
).split(' ');

/** Deterministic word salad: distinct per seed (no shared prefix between conversations). */
function text(numWords: number, seed: number): string {
  let state = seed * 2654435761 + 1;
  return Array.from({ length: numWords }, () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return WORDS[state % WORDS.length];
  }).join(' ');
}

function writeConversations(file: string, count: number, withAnswer: boolean, offset: number): void {
  const lines = Array.from({ length: count }, (_, i) => {
    const seed = offset + i;
    const messages = [{ role: 'user', content: text(80, seed) }];
    if (withAnswer) messages.push({ role: 'assistant', content: text(240, seed + 10_000) });
    return JSON.stringify({ id: `c${seed}`, messages });
  });
  writeFileSync(file, lines.join('\n') + '\n');
}

interface Runs {
  prefill: number[];
  prefillAllRows: number[];
  scoreInput: number[];
  scoreResponse: number[];
  generateGenerated: number[];
  generateScored: number[];
  generateTotal: number[];
}

const stats = (values: number[]): string =>
  `${median(values).toFixed(1)} (${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)})`;

export async function runTeacherBench(opts: TeacherBenchOptions): Promise<number> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const modelDir = opts.modelDir ?? ensureBenchModel(cacheDir, progressPrinter('writing bench model'));
  const threads = availableParallelism();
  const compiled = compileModel({
    modelDir,
    weights: opts.weights,
    cacheDir,
    tensorParallel: defaultTensorParallel(),
    onProgress: progressPrinter('compiling'),
  });
  const work = mkdtempSync(join(tmpdir(), 'moe-teacher-bench-'));
  const flags = { model: modelDir, weights: opts.weights, 'cache-dir': cacheDir, ...opts.engineFlags };
  const runs: Runs = {
    prefill: [],
    prefillAllRows: [],
    scoreInput: [],
    scoreResponse: [],
    generateGenerated: [],
    generateScored: [],
    generateTotal: [],
  };
  const distill = async (name: string, generate: boolean, round: number): Promise<DistillSummary> => {
    const input = join(work, `${name}-${round}.jsonl`);
    // Fresh conversations every round: nothing comes from the prefix cache of an earlier one (each run is a new process anyway).
    writeConversations(input, generate ? opts.numGenerate : opts.numConversations, !generate, round * 1000);
    const options = {
      input,
      outDir: join(work, `${name}-${round}`),
      modelDir,
      topK: opts.topK,
      temperature: 1,
      router: false,
      generate: generate ? { max_tokens: opts.generateTokens, ignore_eos: true, temperature: 0 } : null,
      maxShardBytes: 256 * 1024 * 1024,
    };
    const result = await runOfflineInChild({ kind: 'distill', flags, options });
    if (result.kind !== 'distill') throw new Error('unexpected child result');
    return result.summary;
  };
  try {
    for (let round = 0; round < opts.rounds; round++) {
      const steps = [
        async () => {
          const t = await timePrecisionInChild({ compiled, threads, promptTokens: 512, decodeTokens: 0, allLogitsRows: true });
          runs.prefill.push(512 / (median(t.prefillMs) / 1000));
          runs.prefillAllRows.push(512 / (median(t.prefillAllRowsMs!) / 1000));
        },
        async () => {
          const s = await distill('score', false, round);
          runs.scoreInput.push(s.inputTokens / s.seconds);
          runs.scoreResponse.push(s.responseTokens / s.seconds);
        },
        async () => {
          const s = await distill('generate', true, round);
          runs.generateGenerated.push(s.generatedTokens / s.seconds);
          runs.generateScored.push(s.inputTokens / s.seconds);
          runs.generateTotal.push(s.seconds);
        },
      ];
      // Rotate which kind goes first.
      for (let j = 0; j < steps.length; j++) await steps[(round + j) % steps.length]();
      console.log(
        `round ${round + 1}/${opts.rounds}: prefill ${runs.prefill.at(-1)!.toFixed(1)} (every row ${runs.prefillAllRows.at(-1)!.toFixed(1)}), score ${runs.scoreInput.at(-1)!.toFixed(1)}, ` +
          `generate ${runs.generateGenerated.at(-1)!.toFixed(1)} + score ${runs.generateScored.at(-1)!.toFixed(1)} tok/s`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const paired = (values: number[], base: number[]): string => `${median(values.map((v, i) => v / base[i])).toFixed(2)}x`;
  const versus = (values: number[]): [string, string] => [paired(values, runs.prefill), paired(values, runs.prefillAllRows)];
  printTable(
    ['run', 'tok/s median (min-max)', 'vs prefill', 'vs prefill, every row'],
    [
      ['prefill (runner, 512-token prompt)', stats(runs.prefill), '1.00x', '-'],
      ["prefill computing every position's logits", stats(runs.prefillAllRows), ...versus(runs.prefillAllRows)],
      [`score: input tokens (top-${opts.topK})`, stats(runs.scoreInput), ...versus(runs.scoreInput)],
      ['score: of which response tokens', stats(runs.scoreResponse), '-', '-'],
      [`generate ${opts.generateTokens} tokens: generated`, stats(runs.generateGenerated), '-', '-'],
      ['generate, then score: tokens scored', stats(runs.generateScored), ...versus(runs.generateScored)],
    ],
  );
  console.log(
    `${opts.rounds} rounds; ${opts.numConversations} conversations (80-word question, 240-word answer) per score run, ` +
      `${opts.numGenerate} per generate run; ${opts.weights} weights`,
  );
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `teacher-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ modelDir, options: opts, runs }, null, 2));
  console.log(`wrote ${file}`);
  return 0;
}
