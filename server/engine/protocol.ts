// Messages between the main thread (EngineClient) and the engine worker: transport only; the
// types they carry are the engine's API (api.ts).
import type { EngineStats, GenerationEvent, GenerationRequest, ModelInfo, StepReport } from './api.ts';

/** One event of one sequence, addressed by the id the client gave it. */
export interface SequenceEvent {
  seqId: string;
  event: GenerationEvent;
}

/** Everything one engine step produced: one message per step. */
export interface StepOutput {
  /** Each sequence's events of the step, in order. */
  events: SequenceEvent[];
  /** The model step's routing and timing; null when the step ran no model (only ends). */
  report: StepReport | null;
}

export type ToWorker = { type: 'submit'; id: string; request: GenerationRequest } | { type: 'cancel'; id: string } | { type: 'shutdown' };

export type FromWorker =
  | { type: 'progress'; stage: 'compile' | 'load'; done: number; total: number }
  | { type: 'ready'; info: ModelInfo }
  | { type: 'fatal'; message: string }
  /** The answer to a submit: 'accepted' or an 'invalid_request' error. */
  | { type: 'submitted'; id: string; event: GenerationEvent }
  | ({ type: 'step'; stats: EngineStats } & StepOutput);
