// Small helpers the model tests share for comparing logit rows.

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
