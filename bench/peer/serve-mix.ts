// The serving workload both engines get: bench:serve's request mix (bench/serve-bench.ts,
// repeated here because that module keeps it private; keep the two equal), and the summary of
// one concurrency level from client-side timings, computed the same way for both sides.
import { median, percentile } from '../table.ts';

const PROMPT_LENGTHS = [32, 128, 256, 64];
const OUTPUT_LENGTHS = [64, 128, 128, 64, 128];
/** The longest request of the mix (prompt + output), which one sequence's context must hold. */
export const MIX_MAX_TOKENS = Math.max(...PROMPT_LENGTHS) + Math.max(...OUTPUT_LENGTHS);

export interface MixRequest {
  prompt: number[];
  maxTokens: number;
}

/** Request `index` of the mix: distinct prompts (no shared prefix), every output generated to its length. */
export function mixRequest(index: number, vocabSize: number): MixRequest {
  const length = PROMPT_LENGTHS[index % PROMPT_LENGTHS.length];
  const prompt = Array.from({ length }, (_, i) => 3 + ((index * 7919 + i * 104729) % (vocabSize - 3)));
  return { prompt, maxTokens: OUTPUT_LENGTHS[index % OUTPUT_LENGTHS.length] };
}

/** One request as its client saw it: when it was sent and when each token arrived. */
export interface RequestTiming {
  sentAt: number;
  /** Arrival of each streamed chunk (one token each, for both engines here). */
  tokenTimes: number[];
  /** Tokens generated, when the server reports it; else tokenTimes.length. */
  outputTokens?: number;
  error: string | null;
}

export interface LevelSummary {
  concurrency: number;
  requests: number;
  failed: number;
  wallSeconds: number;
  outputTokensPerSecond: number;
  ttftMs: { p50: number; p99: number };
  itlMs: { p50: number; p99: number };
}

export function summariseLevel(concurrency: number, timings: RequestTiming[], wallSeconds: number): LevelSummary {
  const ok = timings.filter((t) => t.error === null && t.tokenTimes.length > 0);
  const ttft = ok.map((t) => t.tokenTimes[0] - t.sentAt);
  const itl = ok.flatMap((t) => t.tokenTimes.slice(1).map((time, i) => time - t.tokenTimes[i]));
  const outputTokens = ok.reduce((n, t) => n + (t.outputTokens ?? t.tokenTimes.length), 0);
  return {
    concurrency,
    requests: timings.length,
    failed: timings.length - ok.length,
    wallSeconds,
    outputTokensPerSecond: outputTokens / wallSeconds,
    ttftMs: { p50: median(ttft), p99: percentile(ttft, 0.99) },
    itlMs: { p50: median(itl), p99: percentile(itl, 0.99) },
  };
}

/** Runs `numRequests` of the mix through `concurrency` clients that each send one after another. */
export async function runMixLevel(
  concurrency: number,
  numRequests: number,
  vocabSize: number,
  send: (request: MixRequest, client: number) => Promise<RequestTiming>,
): Promise<LevelSummary> {
  const timings: RequestTiming[] = [];
  let next = 0;
  const started = performance.now();
  const client = async (id: number): Promise<void> => {
    while (next < numRequests) timings.push(await send(mixRequest(next++, vocabSize), id));
  };
  await Promise.all(Array.from({ length: concurrency }, (_, id) => client(id)));
  return summariseLevel(concurrency, timings, (performance.now() - started) / 1000);
}
