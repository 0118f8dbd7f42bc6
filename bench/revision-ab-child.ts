// One side of `npm run bench:ab`: loads the bench model with the code of the source tree named
// in argv (its own compile step, runner and shards), prefills, then on each message from the
// parent runs a block of decode steps and answers their median ms/step. It imports the other
// tree's modules by path, so a revision needs no copy of this file.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [tree, weights, batch, promptTokens] = process.argv.slice(2);
const args = { tree, weights, batch: Number(batch), promptTokens: Number(promptTokens) };
const load = (file: string) => import(pathToFileURL(join(args.tree, file)).href);
/** The first of `files` the tree has: revisions before the runtime/ layout kept these in server/engine/. */
const loadMoved = (...files: string[]) => load(files.find((file) => existsSync(join(args.tree, file))) ?? files[0]);

const { compileModel, defaultCacheDir, defaultTensorParallel } = await load('models/compile.ts');
const { ensureBenchModel } = await load('bench/bench-model.ts');
const { batchCaches } = await load('bench/solo-cache.ts');
const { ModelRunner } = await loadMoved('runtime/model-runner.ts', 'server/engine/model-runner.ts');
const { openModelSessions } = await loadMoved('runtime/model-sessions.ts', 'server/engine/model-sessions.ts');
const { argmax } = await load('server/engine/sampler.ts');

const compiled = compileModel({
  modelDir: ensureBenchModel(defaultCacheDir()),
  weights: args.weights,
  tensorParallel: defaultTensorParallel(),
  onProgress: () => {},
});
const sessions = await openModelSessions(compiled, { provider: 'cpu', intraOpThreads: 0 });
// Room for the prompt plus one rewind period of decode steps (below).
const REWIND = 256;
const { size, sequences } = batchCaches(args.promptTokens + REWIND + 1, args.batch);
const runner = new ModelRunner(sessions, size);
const prompt = (b: number) => Array.from({ length: args.promptTokens }, (_, i) => 3 + ((i * 7919 + b) % 30000));
let next: number[] = sequences.map((cache: unknown, b: number) =>
  argmax(runner.step([{ tokens: prompt(b), cache, logits: 'last' }]).logits),
);
let steps = 0;

function decodeBlock(n: number): number {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    // Rewind to the prompt now and then: both sides then decode over the same context lengths.
    if (steps++ % REWIND === REWIND - 1) for (const c of sequences) c.numCachedTokens = args.promptTokens;
    const started = performance.now();
    const { logits } = runner.step(sequences.map((cache: unknown, b: number) => ({ tokens: [next[b]], cache, logits: 'last' })));
    times.push(performance.now() - started);
    const vocab = logits.length / args.batch;
    next = next.map((_, b) => argmax(logits.subarray(b * vocab, (b + 1) * vocab)));
  }
  return times.sort((a, b) => a - b)[times.length >> 1];
}

process.on('message', (n: number) => {
  if (n > 0) {
    process.send?.(decodeBlock(n));
    return;
  }
  void sessions.release().then(() => process.exit(0));
});
process.send?.('ready');
