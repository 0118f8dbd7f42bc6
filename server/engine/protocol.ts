// Messages between the main thread (EngineClient) and the engine worker.
import type { WeightPrecision } from '../../graphs/ops/linear.ts';
import type { SessionSettings } from '../../kernels/session.ts';
import type { ExpertPlacement } from '../../models/compile.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { EngineEvent, EngineStats } from './engine.ts';
import type { KvCachePlan, KvCacheSettings } from './kv-cache-plan.ts';
import type { SchedulerLimits } from './scheduler.ts';
import type { GenerationParams } from './sequence.ts';
import type { StepReport } from './step-stats.ts';

export interface EngineOptions {
  modelDir: string;
  weights: WeightPrecision;
  cacheDir?: string;
  session: SessionSettings;
  /** Tensor-parallel shards (threads) for the MLPs and LM head; see defaultTensorParallel(). */
  tensorParallel: number;
  /** Routed experts split across the shards or replicated on each; default 'auto'. */
  expertPlacement?: ExpertPlacement | 'auto';
  /** Longest sequence (prompt + output) served; defaults to the model's max_position_embeddings. */
  maxModelLen?: number;
  /** Default DEFAULT_KV_CACHE. */
  kvCache?: KvCacheSettings;
  /** Default DEFAULT_SCHEDULER_LIMITS. */
  scheduler?: SchedulerLimits;
}

export interface SubmitRequest extends GenerationParams {
  /** Text is tokenised with the tokenizer's special tokens (BOS); ids are used as given. */
  prompt: string | number[];
  /** Main thread only: EngineClient.generate also yields this sequence's rows of each step's routing. */
  routedExperts?: boolean;
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
}

export type ToWorker =
  | { type: 'submit'; id: string; request: SubmitRequest }
  | { type: 'cancel'; id: string }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'progress'; stage: 'compile' | 'load'; done: number; total: number }
  | { type: 'ready'; info: ModelInfo }
  | { type: 'fatal'; message: string }
  | { type: 'rejected'; id: string; message: string }
  | { type: 'accepted'; id: string; promptTokens: number }
  | { type: 'events'; events: EngineEvent[]; stats: EngineStats }
  | { type: 'step'; report: StepReport };
