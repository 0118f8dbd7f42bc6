// The serving workload both engines get: bench:serve's request mix (bench/serve-bench.ts), and
// the summary of one concurrency level from client-side timings, computed the same way for
// both sides.
import { MIX_OUTPUT_LENGTHS, MIX_PROMPT_LENGTHS, requestAt } from '../serve-bench.ts';
import type { StreamRequest } from '../stream-client.ts';
import { median, percentile } from '../table.ts';

/** The longest request of the mix (prompt + output), which one sequence's context must hold. */
export const MIX_MAX_TOKENS = Math.max(...MIX_PROMPT_LENGTHS) + Math.max(...MIX_OUTPUT_LENGTHS);

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
  send: (request: StreamRequest, client: number) => Promise<RequestTiming>,
): Promise<LevelSummary> {
  const timings: RequestTiming[] = [];
  let next = 0;
  const started = performance.now();
  const client = async (id: number): Promise<void> => {
    while (next < numRequests) timings.push(await send(requestAt(next++, vocabSize), id));
  };
  await Promise.all(Array.from({ length: concurrency }, (_, id) => client(id)));
  return summariseLevel(concurrency, timings, (performance.now() - started) / 1000);
}
