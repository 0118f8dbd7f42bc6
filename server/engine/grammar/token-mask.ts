// xgrammar's token bitmask: one bit per token id, set when the grammar allows the token,
// 32 ids per Int32 word (id i is bit i % 32 of word i / 32).

/** Whether the mask allows the token; ids past the mask's end are not allowed. */
export function isTokenAllowed(bitmask: Int32Array, tokenId: number): boolean {
  const word = tokenId >>> 5;
  return word < bitmask.length && ((bitmask[word] >>> (tokenId & 31)) & 1) === 1;
}

/**
 * Sets every logit the mask refuses to -Infinity, in place. -Infinity rather than a large
 * negative number: a refused token then has probability exactly 0 after any temperature, and
 * no later step can bring it back (logit_bias adds at most 100, penalties subtract or scale,
 * and the sampler clamps a scaled -Infinity to -FLOAT32_MAX, still weight 0). The sampler
 * never sees an all -Infinity row while the grammar is unfinished: xgrammar always allows at
 * least one token (a stop token once the grammar can end).
 */
export function applyTokenBitmask(logits: Float32Array, bitmask: Int32Array): void {
  const numTokens = logits.length;
  const numWords = Math.min(bitmask.length, Math.ceil(numTokens / 32));
  for (let word = 0; word < numWords; word++) {
    const bits = bitmask[word];
    if (bits === -1) continue; // all 32 allowed: the common case inside free text
    const base = word << 5;
    const end = Math.min(base + 32, numTokens);
    if (bits === 0) {
      // all 32 refused: the common case inside JSON, where a few hundred tokens fit
      for (let id = base; id < end; id++) logits[id] = -Infinity;
      continue;
    }
    for (let id = base; id < end; id++) {
      if (((bits >>> (id - base)) & 1) === 0) logits[id] = -Infinity;
    }
  }
  // Logits past the mask (a logits row wider than the grammar's vocabulary) are refused.
  logits.fill(-Infinity, numWords << 5);
}

/** The ids the mask allows among candidates (e.g. the stop tokens), in their order. */
export function allowedAmong(bitmask: Int32Array, candidates: readonly number[]): number[] {
  return candidates.filter((id) => isTokenAllowed(bitmask, id));
}
