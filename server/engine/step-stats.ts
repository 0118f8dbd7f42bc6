// What the engine reports to the main thread after each model step, for metrics and for
// per-request routing: kept apart from the scheduling code so that both can change freely.
// (Queue and cache state travel with the step's events as EngineStats.)
import type { StepResult, StepSequence } from '../../runtime/model-runner.ts';

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
}

/**
 * Copies the routing out of the step (the runner's buffers may be reused by the next step).
 * Called after the runner has advanced each cache by the step's tokens.
 */
export function buildStepReport(
  seqIds: readonly string[],
  inputs: readonly StepSequence[],
  result: StepResult,
  elapsedMs: number,
): StepReport {
  return {
    elapsedMs,
    numTokens: result.numTokens,
    sequences: inputs.map((input, i) => ({
      seqId: seqIds[i],
      start: input.cache.numCachedTokens - input.tokens.length,
      numTokens: input.tokens.length,
    })),
    moeLayers: result.moeLayers.slice(),
    expertIds: result.routing.map((route) => route.expertIds.slice()),
  };
}
