// Helpers for tests that drive a real EngineClient (real worker thread, real ONNX Runtime)
// over a tiny synthetic checkpoint: start it, build requests, collect a request's events,
// and compute what a direct ModelRunner greedy loop produces for comparison.
import { Worker } from 'node:worker_threads';
import {
  defaultSamplingParams,
  type EngineOptions,
  type GenerationEvent,
  type GenerationRequest,
  type SamplingParams,
} from '../../server/engine/api.ts';
import { EngineClient } from '../../server/engine/client.ts';
import type { FromWorker, SequenceEvent } from '../../server/engine/protocol.ts';
import type { OpenedRunner, TinyModel } from './tiny-model.ts';

/**
 * fp32 weights and one intra-op thread, as openRunner; two tensor-parallel shards, so the
 * engine worker's own shard worker is exercised (outputs equal the unsharded runner's).
 */
export function startTinyEngine(
  model: TinyModel,
  maxModelLen?: number,
  options: Pick<EngineOptions, 'kvCache' | 'scheduler'> = {},
): Promise<EngineClient> {
  return EngineClient.start({
    modelDir: model.dir,
    weights: 'fp32',
    cacheDir: model.cacheDir,
    session: { provider: 'cpu', intraOpThreads: 1 },
    tensorParallel: 2,
    maxModelLen,
    ...options,
  });
}

export interface RequestOverrides extends Partial<Omit<GenerationRequest, 'sampling'>> {
  sampling?: Partial<SamplingParams>;
}

/** A greedy request with no stop tokens unless overridden. */
export function makeRequest(prompt: string | number[], overrides: RequestOverrides = {}): GenerationRequest {
  const { sampling, ...rest } = overrides;
  return {
    prompt,
    maxTokens: 16,
    seed: null,
    stopTokenIds: [],
    ignoreEos: false,
    topLogprobs: null,
    ...rest,
    sampling: { ...defaultSamplingParams, temperature: 0, ...sampling },
  };
}

type Finished = Extract<GenerationEvent, { type: 'finished' }>;
type ErrorEvent = Extract<GenerationEvent, { type: 'error' }>;

export interface Collected {
  events: GenerationEvent[];
  tokens: number[];
  /** Token texts and the finished event's held-back text, joined. */
  text: string;
  acceptedPromptTokens: number | null;
  finished: Finished | null;
  error: ErrorEvent | null;
}

/** Runs one request to its end and sorts its events. */
export async function collect(client: EngineClient, request: GenerationRequest, signal?: AbortSignal): Promise<Collected> {
  const events: GenerationEvent[] = [];
  for await (const event of client.generate(request, signal)) events.push(event);
  return summarize(events);
}

export function summarize(events: GenerationEvent[]): Collected {
  const result: Collected = { events, tokens: [], text: '', acceptedPromptTokens: null, finished: null, error: null };
  for (const event of events) {
    if (event.type === 'accepted') result.acceptedPromptTokens = event.promptTokens;
    if (event.type === 'token') {
      result.tokens.push(event.token);
      result.text += event.text;
    }
    if (event.type === 'finished') {
      result.finished = event;
      result.text += event.text;
    }
    if (event.type === 'error') result.error = event;
  }
  return result;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Greedy decoding straight through a ModelRunner: one prefill step, then one step per token. */
export async function runnerGreedy(opened: OpenedRunner, prompt: number[], numTokens: number): Promise<number[]> {
  const cache = opened.newCache(prompt.length + numTokens);
  const out: number[] = [];
  let pending = prompt;
  while (out.length < numTokens) {
    const { logits } = await opened.runner.step([{ tokens: pending, cache, logits: 'last' }]);
    out.push(argmax(logits));
    pending = [out[out.length - 1]];
  }
  return out;
}

/** Logits after each of `tokens` (row i predicts token i + 1), from one prefill over them all. */
export async function runnerLogitsAll(opened: OpenedRunner, tokens: number[]): Promise<Float32Array[]> {
  const { logits } = await opened.runner.step([{ tokens, cache: opened.newCache(tokens.length), logits: 'all' }]);
  const vocab = opened.runner.spec.vocabSize;
  return tokens.map((_, i) => logits.subarray(i * vocab, (i + 1) * vocab));
}

/** Logits of the same token computed incrementally (worker) and in one prefill (check) differ by float noise. */
export const LOGIT_SLACK = 1e-4;

/** How many tokens are more likely than `token`, counting near-ties only when `slack` < 0. */
export function rankOf(row: Float32Array, token: number, slack: number): number {
  let rank = 0;
  for (let i = 0; i < row.length; i++) if (i !== token && row[i] > row[token] + slack) rank++;
  return rank;
}

/** Probability mass (at `temperature`) of the tokens more likely than `token`. */
export function massAbove(row: Float32Array, token: number, temperature: number): number {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let total = 0;
  let above = 0;
  for (let i = 0; i < row.length; i++) {
    const p = Math.exp((row[i] - max) / temperature);
    total += p;
    if (i !== token && row[i] > row[token] + LOGIT_SLACK) above += p;
  }
  return above / total;
}

export interface WorkerTap {
  /** Every message the worker posted since the tap started, in the order it posted them. */
  readonly messages: FromWorker[];
  /** The engine events among them, one array per model step. */
  steps(): SequenceEvent[][];
  /** Ids of the requests the worker accepted, in order. */
  acceptedIds(): string[];
  stop(): void;
}

/**
 * Listens to what the worker posts, including events of requests whose consumer has gone (the
 * client drops those). EngineClient has no public counters, so this is the only way to see
 * what the worker does with a cancelled sequence, which sequences share a step, or when the
 * worker took a message in (messages are handled and answered in order).
 */
export function tapWorker(client: EngineClient): WorkerTap {
  const worker: unknown = Reflect.get(client, 'worker');
  if (!(worker instanceof Worker)) throw new Error('EngineClient no longer keeps its Worker in `worker`; update tapWorker');
  const messages: FromWorker[] = [];
  const onMessage = (message: FromWorker): void => void messages.push(message);
  worker.on('message', onMessage);
  return {
    messages,
    steps: () => messages.flatMap((m) => (m.type === 'step' && m.events.length > 0 ? [m.events] : [])),
    acceptedIds: () => messages.flatMap((m) => (m.type === 'submitted' && m.event.type === 'accepted' ? [m.id] : [])),
    stop: () => worker.off('message', onMessage),
  };
}

/**
 * Token events of `seqId` the worker posted after it accepted request `markerId`. A request
 * submitted right behind a cancel is taken in after it, so with the marker's id this counts
 * the tokens generated after the worker handled the cancel.
 */
export function tokensPostedAfter(tap: WorkerTap, markerId: string, seqId: string): number {
  const at = tap.messages.findIndex((m) => m.type === 'submitted' && m.event.type === 'accepted' && m.id === markerId);
  if (at < 0) throw new Error(`the worker never accepted ${markerId}`);
  return tap.messages
    .slice(at)
    .flatMap((m) => (m.type === 'step' ? m.events : []))
    .filter((e) => e.event.type === 'token' && e.seqId === seqId).length;
}
