// What the engine reports to the main thread after each model step, for metrics and for the
// routing debug hook: kept apart from the scheduling code so that both can change freely.
import type { StepResult, StepSequence } from './model-runner.ts';

/**
 * Scheduler and cache state after a step. Fields the current engine has no notion of yet
 * (paged KV blocks, preemption, prefix caching) are reported as 0 until the scheduler fills them.
 */
export interface SchedulerStats {
  numRunning: number;
  numWaiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  /** Cumulative since the engine started. */
  numPreemptions: number;
  /** Cumulative since the engine started. */
  prefixCacheHitTokens: number;
}

/** One model step: its duration, its tokens, and every routing decision it made. */
export interface StepReport {
  elapsedMs: number;
  numTokens: number;
  /** The step's token rows by sequence, in row order. */
  sequences: Array<{ seqId: string; numTokens: number }>;
  /** Decoder layer index of each MoE layer, in layer order. */
  moeLayers: number[];
  /** Per MoE layer: [numTokens * topK] chosen expert ids, token-major (rows as in `sequences`). */
  expertIds: Int32Array[];
}

/** Copies the routing out of the step (the runner's buffers may be reused by the next step). */
export function buildStepReport(
  seqIds: readonly string[],
  inputs: readonly StepSequence[],
  result: StepResult,
  elapsedMs: number,
): StepReport {
  return {
    elapsedMs,
    numTokens: result.numTokens,
    sequences: inputs.map((input, i) => ({ seqId: seqIds[i], numTokens: input.tokens.length })),
    moeLayers: result.moeLayers.slice(),
    expertIds: result.routing.map((route) => route.expertIds.slice()),
  };
}

/** What the current engine knows: everything admitted runs at once; no paged cache yet. */
export function currentSchedulerStats(numRunning: number): SchedulerStats {
  return { numRunning, numWaiting: 0, kvBlocksUsed: 0, kvBlocksTotal: 0, numPreemptions: 0, prefixCacheHitTokens: 0 };
}
