// Combine: the weighted sum of each token's routed experts' outputs, added into the token's
// rows next to the shared experts' (or dense MLP's) output and the residual.

/** out[i] += y[i]: the shared experts' or dense MLP's rows, computed in the mlp-in graph. */
export function addInto(out: Float32Array, y: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] += y[i];
}

/**
 * dst[rows[i]] += weights[i] * expertOut[i] for each i, row by row. The product and sum are
 * formed in float64 and rounded to float32 once per element; the caller fixes the order of
 * experts (ascending id from groupByExpert) so the combine is bitwise reproducible.
 */
export function scatterAddWeighted(
  dst: Float32Array,
  width: number,
  expertOut: Float32Array,
  rows: Int32Array,
  weights: Float32Array,
): void {
  if (expertOut.length < rows.length * width) {
    throw new RangeError(`expert output holds ${expertOut.length} values, need ${rows.length} x ${width}`);
  }
  if (weights.length < rows.length) throw new RangeError(`${weights.length} weights for ${rows.length} rows`);
  const numDstRows = Math.floor(dst.length / width);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    if (!(row >= 0 && row < numDstRows)) throw new RangeError(`row ${row} outside [0, ${numDstRows})`);
    const w = weights[i];
    const dstBase = row * width;
    const srcBase = i * width;
    for (let c = 0; c < width; c++) dst[dstBase + c] += w * expertOut[srcBase + c];
  }
}
