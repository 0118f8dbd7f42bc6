// What the engine reports to the main thread after each model step, for metrics and for
// per-request routing: kept apart from the scheduling code so that both can change freely.
// (Queue and cache state travel with the step's events as EngineStats.)
import type { StepResult, StepSequence } from '../../runtime/step-batch.ts';
import type { StepReport } from './api.ts';

/**
 * The step's report. The routing arrays are the runner's own, fresh every step: they are
 * handed over, not copied (the worker transfers their buffers to the main thread). Called
 * after the runner has advanced each cache by the step's tokens.
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
    moeLayers: result.moeLayers,
    expertIds: result.routing.map((route) => route.expertIds),
    expertWeights: result.routing.map((route) => route.weights),
  };
}

/** The buffers a report's routing owns, to transfer rather than copy across threads. */
export function reportBuffers(report: StepReport | null): ArrayBuffer[] {
  if (report === null) return [];
  const buffers = new Set<ArrayBuffer>();
  for (const array of [...report.expertIds, ...report.expertWeights]) if (array.buffer instanceof ArrayBuffer) buffers.add(array.buffer);
  return [...buffers];
}
