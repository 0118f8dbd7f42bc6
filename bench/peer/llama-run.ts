// llama.cpp's side of bench:peer, in a child process of its own (see child.ts): batch-1 decode
// and prefill timed the way precision-run.ts times moe-server, the bench:serve mix through one
// context whose sequences llama.cpp batches together, or a greedy run for the correctness guard.
import { answerOnce, peakRssMib } from './child.ts';
import { contextOptions, type KvMode, type Llama, type LlamaModel, loadLlama } from './llama-cpp-package.ts';
import { type LevelSummary, type RequestTiming, runMixLevel } from './serve-mix.ts';

interface Common {
  moduleUrl: string;
  gguf: string;
  threads: number;
}

export type LlamaRunRequest =
  | (Common & { kind: 'speed'; promptTokens: number; decodeTokens: number; vocabSize: number; kvModes: KvMode[] })
  | (Common & {
      kind: 'serve';
      kv: KvMode;
      levels: Array<{ concurrency: number; requests: number }>;
      contextPerSequence: number;
      vocabSize: number;
    })
  | (Common & { kind: 'greedy'; prompt: number[]; steps: number; topK: number });

export interface SpeedTimings {
  kv: KvMode;
  flashAttention: boolean;
  prefillMs: number;
  decodeStepMs: number[];
}

export interface GreedyStep {
  token: number;
  /** The topK most likely next tokens and their log-probabilities, most likely first. */
  top: Array<[token: number, logprob: number]>;
}

export type LlamaRunResponse =
  | { kind: 'speed'; configs: SpeedTimings[]; peakRssMib: number }
  | { kind: 'serve'; levels: LevelSummary[]; peakRssMib: number; contextSize: number }
  | { kind: 'greedy'; steps: GreedyStep[] };

/** bench/precision-run.ts's prompt: token i = 3 + (i * 7919) % (vocab - 3). */
export const benchPrompt = (length: number, vocabSize: number): number[] =>
  Array.from({ length }, (_, i) => 3 + ((i * 7919) % (vocabSize - 3)));

async function speed(model: LlamaModel, req: Extract<LlamaRunRequest, { kind: 'speed' }>): Promise<SpeedTimings[]> {
  const prompt = benchPrompt(req.promptTokens, req.vocabSize);
  const contextSize = req.promptTokens + req.decodeTokens + 1;
  const out: SpeedTimings[] = [];
  for (const kv of req.kvModes) {
    const threads = { ideal: req.threads, min: req.threads };
    const context = await model.createContext(contextOptions(kv, { contextSize, batchSize: req.promptTokens, sequences: 1, threads }));
    const sequence = context.getSequence();
    const run = async (decodeTokens: number): Promise<{ prefillMs: number; decodeStepMs: number[] }> => {
      await sequence.clearHistory();
      const stamps: number[] = [];
      const started = performance.now();
      for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
        void token;
        stamps.push(performance.now());
        if (stamps.length > decodeTokens) break;
      }
      return { prefillMs: stamps[0] - started, decodeStepMs: stamps.slice(1).map((t, i) => t - stamps[i]) };
    };
    await run(0); // untimed, as precision-run.ts: a fresh process's first steps pay one-time costs
    out.push({ kv, flashAttention: context.flashAttention, ...(await run(req.decodeTokens)) });
    await context.dispose();
  }
  return out;
}

async function serve(
  model: LlamaModel,
  req: Extract<LlamaRunRequest, { kind: 'serve' }>,
): Promise<{ levels: LevelSummary[]; contextSize: number }> {
  // One context for the whole run, as a server keeps one: as many sequences as the highest
  // concurrency, each holding contextPerSequence tokens (node-llama-cpp sizes per sequence).
  const maxConcurrency = Math.max(...req.levels.map((l) => l.concurrency));
  const threads = { ideal: req.threads, min: req.threads };
  const base = { contextSize: req.contextPerSequence, batchSize: 512, sequences: maxConcurrency, threads };
  const context = await model.createContext(contextOptions(req.kv, base));
  const sequences = Array.from({ length: maxConcurrency }, () => context.getSequence());
  const send = async (request: { prompt: number[]; maxTokens: number }, client: number): Promise<RequestTiming> => {
    const sequence = sequences[client];
    await sequence.clearHistory();
    const timing: RequestTiming = { sentAt: performance.now(), tokenTimes: [], error: null };
    for await (const token of sequence.evaluate(request.prompt, { temperature: 0, yieldEogToken: true })) {
      void token;
      timing.tokenTimes.push(performance.now());
      if (timing.tokenTimes.length >= request.maxTokens) break;
    }
    return timing;
  };
  await send({ prompt: [3, 4, 5], maxTokens: 4 }, 0); // warm-up, as bench:serve
  const levels: LevelSummary[] = [];
  for (const level of req.levels) levels.push(await runMixLevel(level.concurrency, level.requests, req.vocabSize, send));
  const contextSize = context.contextSize;
  await context.dispose();
  return { levels, contextSize };
}

async function greedy(model: LlamaModel, req: Extract<LlamaRunRequest, { kind: 'greedy' }>): Promise<GreedyStep[]> {
  const threads = { ideal: req.threads, min: req.threads };
  const base = { contextSize: req.prompt.length + req.steps + 1, batchSize: req.prompt.length, sequences: 1, threads };
  const context = await model.createContext(contextOptions('f32', base));
  const steps: GreedyStep[] = [];
  const generator = context
    .getSequence()
    .evaluateWithMetadata(req.prompt, { probabilities: true }, { temperature: 0, yieldEogToken: true });
  for await (const { token, probabilities } of generator) {
    const top = [...probabilities.entries()].sort((a, b) => b[1] - a[1]).slice(0, req.topK);
    steps.push({ token, top: top.map(([t, p]): [number, number] => [t, Math.log(p)]) });
    if (steps.length >= req.steps) break;
  }
  await context.dispose();
  return steps;
}

async function run(req: LlamaRunRequest): Promise<LlamaRunResponse> {
  const llama: Llama = await loadLlama(req.moduleUrl, req.threads);
  const model = await llama.loadModel({ modelPath: req.gguf, gpuLayers: 0 });
  try {
    if (req.kind === 'speed') return { kind: 'speed', configs: await speed(model, req), peakRssMib: peakRssMib() };
    if (req.kind === 'serve') return { kind: 'serve', ...(await serve(model, req)), peakRssMib: peakRssMib() };
    return { kind: 'greedy', steps: await greedy(model, req) };
  } finally {
    await model.dispose();
    await llama.dispose();
  }
}

answerOnce(run);
