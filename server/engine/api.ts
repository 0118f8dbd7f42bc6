// The serving engine's one boundary: what the HTTP side, the CLI, metrics and tests may know
// of the engine. The engine runs in a worker thread (ONNX Runtime's run() blocks its thread);
// EngineClient (client.ts) implements `Engine` over that worker and is what starts one; tests
// can put a stand-in in its place. Outside server/engine, only this file and client.ts are
// imported.
import type { WeightPrecision } from '../../graphs/ops/linear.ts';
import type { SessionSettings } from '../../kernels/session.ts';
import type { ExpertPlacement } from '../../models/compile.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { GrammarSpec } from './grammar/grammar-spec.ts';

export type { GrammarSpec, GrammarSpecType } from './grammar/grammar-spec.ts';

export interface SamplingParams {
  /** 0 (below the sampler's GREEDY_TEMPERATURE) = greedy. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
  /** 0 = off. */
  minP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** 1 = off. */
  repetitionPenalty: number;
  logitBias: Map<number, number> | null;
}

/** Plain sampling at temperature 1 with every filter and penalty off. Frozen: spread it. */
export const defaultSamplingParams: SamplingParams = Object.freeze({
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  logitBias: null,
});

export interface GenerationParams {
  /** At least 1; 0 only when scoring the prompt (promptLogprobs): the prompt is scored, nothing generated. */
  maxTokens: number;
  sampling: SamplingParams;
  /** Same seed and prompt give the same tokens; null draws a fresh seed. */
  seed: number | null;
  /** Tokens that end generation (EOS and any extra stop ids). */
  stopTokenIds: number[];
  ignoreEos: boolean;
  /** Return the chosen token's logprob and this many alternatives; null for none. */
  topLogprobs: number | null;
  /** Strings that end generation; they and anything after them are never emitted. */
  stopStrings?: readonly string[];
  /** Score the prompt teacher-forced in its prefill ('prompt_logprobs' events); null or absent: no scoring. */
  promptLogprobs?: PromptLogprobsOptions | null;
  /**
   * False: take nothing from the prefix cache, so every prompt position runs for this request
   * (its routing is then complete). Default true. Scored positions never come from the cache.
   */
  prefixCache?: boolean;
}

/** One sequence to generate. */
export interface GenerationRequest extends GenerationParams {
  /** Text is tokenised with the tokenizer's special tokens (BOS); ids are used as given. */
  prompt: string | number[];
  /** Also yield this sequence's rows of each step's routing ('routed' events). */
  routedExperts?: boolean;
  /** Constrained decoding: every generated token keeps the output inside this grammar. */
  grammar?: OutputConstraint | null;
}

export interface OutputConstraint {
  spec: GrammarSpec;
  /**
   * The request field that carried it ("response_format", "tool_choice"...): a grammar that
   * cannot be compiled is an invalid_request error naming it (the event's `param`).
   */
  param: string;
}

/** Most alternatives per scored prompt position (distillation keeps up to 256; the HTTP API caps at 20). */
export const MAX_PROMPT_TOP_K = 256;

export interface PromptLogprobsOptions {
  /** Alternatives per position, 0..MAX_PROMPT_TOP_K. */
  topK: number;
  /** First position scored, >= 1 (default 1: every position but the first, which has no context). */
  from?: number;
  /**
   * The logits are divided by this before the log-softmax and the top-k cut (default 1: the
   * model's raw distribution). Never penalties, bias or the sampling temperature.
   */
  temperature?: number;
}

/**
 * Scores of consecutive prompt positions start.. (one step's share), columns of typed arrays
 * so a step's scores cross threads as a few buffers. Position p's values are the model's
 * prediction of prompt token p from tokens 0..p-1: log-softmax of the logits (divided by the
 * temperature) in float64, rounded to float32 once.
 */
export interface PromptLogprobs {
  start: number;
  /** [count] the prompt token at each position. */
  tokens: Int32Array;
  /** [count] its logprob. */
  logprobs: Float32Array;
  /** [count] its rank: 1 + the number of tokens more likely (vLLM's definition). */
  ranks: Int32Array;
  topK: number;
  /** [count * topK] the most likely token ids, best first (equal logits: lower id first). */
  topIds: Int32Array;
  topLogprobs: Float32Array;
  /** [count] log of the probability outside the top k, log(1 - sum of their probabilities); -Infinity when none is left. */
  tailLogprobs: Float32Array;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface TokenLogprob {
  token: number;
  logprob: number;
  top: Array<{ token: number; logprob: number }>;
}

/** What happens to one sequence, in order: accepted, then routed/token events, then finished; or an error at any point. */
export type GenerationEvent =
  | { type: 'accepted'; promptTokens: number }
  | { type: 'token'; token: number; text: string; logprob: TokenLogprob | null }
  /** Scores of prompt positions (requests with promptLogprobs), in position order, before the first token. */
  | { type: 'prompt_logprobs'; scores: PromptLogprobs }
  /**
   * The sequence's tokens in one step, at positions start.. (a recomputed sequence runs some
   * again); per MoE layer [numTokens * topK] expert ids and their gate weights. Only for requests with routedExperts.
   */
  | { type: 'routed'; start: number; numTokens: number; expertIds: Int32Array[]; expertWeights: Float32Array[] }
  | {
      type: 'finished';
      finishReason: FinishReason;
      /** Text held back by the detokenizer (an incomplete character at the very end). */
      text: string;
      promptTokens: number;
      /** Prompt tokens whose KV came from the prefix cache when the sequence was first scheduled. */
      cachedTokens: number;
      completionTokens: number;
      prefillMs: number;
      decodeMs: number;
      queueMs: number;
    }
  /** kind 'shutdown': the server stopped the engine on purpose, not a fault. `param`: the request field at fault, if one is. */
  | { type: 'error'; message: string; kind: 'invalid_request' | 'internal' | 'shutdown'; param?: string };

/** The engine's state after a step, for /health, metrics and the load benchmark. */
export interface EngineStats {
  numRunning: number;
  numWaiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  kvBlockSize: number;
  /** Cumulative counts since start. */
  numPreemptions: number;
  prefixCacheQueryTokens: number;
  prefixCacheHitTokens: number;
}

/** One model step: its duration, its tokens, and every routing decision it made. */
export interface StepReport {
  elapsedMs: number;
  numTokens: number;
  /** The step's token rows by sequence, in row order; `start` = position of its first token. */
  sequences: Array<{ seqId: string; start: number; numTokens: number }>;
  /** Decoder layer index of each MoE layer, in layer order. */
  moeLayers: number[];
  /** Per MoE layer: [numTokens * topK] chosen expert ids, token-major (rows as in `sequences`). */
  expertIds: Int32Array[];
  /** Per MoE layer: the gate weights of those choices, same layout. */
  expertWeights: Float32Array[];
}

/** Continuous batching limits (scheduler.ts). */
export interface SchedulerLimits {
  /** Most sequences in the running set. */
  maxNumSeqs: number;
  /** Most tokens (decodes plus prefill chunks) in one model step. */
  maxBatchTokens: number;
  /**
   * While sequences decode, prompt chunks are cut so that a step is predicted to take at most
   * this long (step-budget.ts); 0 = no time budget. Default 0.
   */
  maxStepMs?: number;
}

export const DEFAULT_SCHEDULER_LIMITS: SchedulerLimits = { maxNumSeqs: 64, maxBatchTokens: 256, maxStepMs: 0 };

/** How big the KV cache pool is (kv-cache-plan.ts sizes it). */
export interface KvCacheSettings {
  /** Tokens the pool holds in total; overrides memoryMib when set. */
  numTokens?: number;
  /** Memory budget for the pool in MiB (fp32 keys and values of every layer). */
  memoryMib: number;
  blockSize: number;
}

export const DEFAULT_KV_CACHE: KvCacheSettings = { memoryMib: 1024, blockSize: 16 };

export interface KvCachePlan {
  numBlocks: number;
  blockSize: number;
  /** numBlocks * blockSize */
  numTokens: number;
  bytesPerToken: number;
}

export interface EngineOptions {
  modelDir: string;
  weights: WeightPrecision;
  cacheDir?: string;
  session: SessionSettings;
  /** Tensor-parallel shards (threads) for the MLPs and LM head; see defaultTensorParallel(). */
  tensorParallel: number;
  /** Routed experts split across the shards or replicated on each; default 'auto'. */
  expertPlacement?: ExpertPlacement | 'auto';
  /** int4: weights sharing one scale; default the compiler's (64). */
  int4BlockSize?: number;
  /** Longest sequence (prompt + output) served; defaults to the model's max_position_embeddings. */
  maxModelLen?: number;
  /** Default DEFAULT_KV_CACHE. */
  kvCache?: KvCacheSettings;
  /** Default DEFAULT_SCHEDULER_LIMITS. */
  scheduler?: SchedulerLimits;
  /** Default: 'fused' on CUDA, 'per-expert' on the CPU (runtime/device/device-plan.ts). */
  plan?: 'per-expert' | 'fused';
  /**
   * Special tokens kept in the generated text and allowed in grammars: the tool-call parser's
   * markup when the vocabulary marks it special (Mistral's [TOOL_CALLS]). Default none.
   */
  textSpecialTokens?: string[];
}

/** Where and how the model runs, for /v1/models, /health and the startup log. */
export interface ExecutionInfo {
  /** 'cpu' or 'cuda:N'. */
  device: string;
  plan: 'per-expert' | 'fused';
  /** What computes in which precision, in words. */
  precision: string;
  /** Where the precision differs from what was asked for, and why. */
  notes: string[];
  /** ONNX Runtime calls one decode step of one sequence makes, on the GPU and on the CPU. */
  graphCallsPerDecodeStep: { device: number; cpu: number };
}

export interface ModelInfo {
  spec: ModelSpec;
  /** Longest prompt + output: the configured limit, the model's and the KV cache's, whichever is least. */
  maxModelLen: number;
  kvCache: KvCachePlan;
  scheduler: SchedulerLimits;
  compiledDir: string;
  reusedCompile: boolean;
  loadMs: number;
  execution: ExecutionInfo;
  /** Resident memory of the process as the model loaded (bench:scale splits it up from these). */
  memory: LoadMemory;
}

export interface LoadMemory {
  /** Process RSS just before the sessions opened. */
  rssBeforeSessionsBytes: number;
  /** What opening every shard's sessions added to the RSS: the weights as ONNX Runtime holds them, and per-session state. */
  sessionsBytes: number;
  /** The KV cache pool as configured (its pages become resident as blocks fill). */
  kvCacheBytes: number;
}

/** Sees every request's events (metrics, tests); `requestId` is the engine's id for the request. */
export type GenerationObserver = (requestId: string, event: GenerationEvent) => void;

/** Sees every model step, its routing included: metrics, tests. */
export type StepObserver = (report: StepReport) => void;

export interface Engine {
  readonly info: ModelInfo;
  /** False once the engine has stopped (shut down or failed): every later request fails at once. */
  readonly isRunning: boolean;
  /** Requests whose events are still awaited. */
  readonly numInFlight: number;
  /** The engine's queues and cache as of its last step. */
  readonly stats: EngineStats;
  /**
   * Streams one sequence's events; it ends after 'finished' or 'error'. Aborting the signal
   * cancels it (its cache is freed at the next step boundary), as does leaving the loop early.
   */
  generate(request: GenerationRequest, signal?: AbortSignal): AsyncGenerator<GenerationEvent>;
  observe(observer: GenerationObserver): () => void;
  observeSteps(observer: StepObserver): () => void;
  /** Stops the engine; requests still running end with a 'shutdown' error. */
  close(): Promise<void>;
}
