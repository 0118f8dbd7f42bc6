// Additive causal masks for the attention-core graph: new token i of a sequence (absolute
// position start + i) sees cached positions 0..start+i. Columns past the sequence's end (the
// unfilled rest of its last cache block) are masked too.

/** Large negative rather than -Infinity: exp() underflows to exactly 0 either way, and no NaN can appear. */
export const MASKED = -1e30;

export function causalMask(
  numNewTokens: number,
  numCachedBefore: number,
  width = numCachedBefore + numNewTokens,
  out?: Float32Array,
): Float32Array {
  const total = width;
  const mask = out && out.length === numNewTokens * total ? out : new Float32Array(numNewTokens * total);
  for (let i = 0; i < numNewTokens; i++) {
    const row = i * total;
    const visible = numCachedBefore + i + 1;
    mask.fill(0, row, row + visible);
    mask.fill(MASKED, row + visible, row + total);
  }
  return mask;
}
