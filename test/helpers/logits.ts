// Small helpers the model tests share for comparing logit rows and routing with a reference.
import type { StepResult } from '../../runtime/step-batch.ts';

/** Index of the largest value; ties go to the lowest index. */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Rows [from, from + count) of a [rows, vocab] logits matrix. */
export function logitRows(logits: Float32Array, vocab: number, from: number, count: number): Float32Array {
  return logits.subarray(from * vocab, (from + count) * vocab);
}

/** Max |engine - reference| over the logit rows of one step. */
export function maxLogitDiff(engine: Float32Array, reference: Float64Array[]): number {
  const vocab = reference[0].length;
  let max = 0;
  reference.forEach((row, r) => {
    for (let i = 0; i < vocab; i++) max = Math.max(max, Math.abs(engine[r * vocab + i] - row[i]));
  });
  return max;
}

/** Engine routing reshaped like the references': [token][moeLayer][k]. */
export function engineExperts(result: StepResult, topK: number): number[][][] {
  return Array.from({ length: result.numTokens }, (_, t) =>
    result.routing.map((route) => Array.from(route.expertIds.subarray(t * topK, (t + 1) * topK))),
  );
}
