// Per-sequence key/value cache in engine-owned memory, token-major
// [capacity, kvHeads, headDim] per layer, so the filled prefix is one contiguous view that
// the attention graph reads without a copy. Capacity grows geometrically up to maxTokens.

/** What one token stores per layer (see kvCacheShape in kv-cache-shape.ts). */
export interface KvCacheShape {
  numLayers: number;
  /** Values in a token's key row: numKvHeads * headDim, or MLA's kvLoraRank + qkRopeHeadDim. */
  keyWidth: number;
  /** Values in a token's value row: numKvHeads * headDim, or 0 for MLA (values come from the latent). */
  valueWidth: number;
}

export class KvCacheFullError extends Error {
  constructor(readonly requested: number, readonly maxTokens: number) {
    super(`sequence needs ${requested} cached tokens but the limit is ${maxTokens}`);
    this.name = 'KvCacheFullError';
  }
}

export class SequenceKvCache {
  /** Tokens whose keys and values are stored (committed by the model runner after each step). */
  numCachedTokens = 0;
  private capacity = 0;
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];

  constructor(
    readonly shape: KvCacheShape,
    readonly maxTokens: number,
  ) {}

  /** Makes room for `numTokens` in total; existing entries are kept. */
  reserve(numTokens: number): void {
    if (numTokens > this.maxTokens) throw new KvCacheFullError(numTokens, this.maxTokens);
    if (numTokens <= this.capacity) return;
    const capacity = Math.min(this.maxTokens, Math.max(numTokens, this.capacity * 2, 64));
    const grow = (old: Float32Array | undefined, width: number): Float32Array => {
      const next = new Float32Array(capacity * width);
      if (old) next.set(old.subarray(0, this.numCachedTokens * width));
      return next;
    };
    const { keyWidth, valueWidth } = this.shape;
    this.keys = Array.from({ length: this.shape.numLayers }, (_, l) => grow(this.keys[l], keyWidth));
    this.values = Array.from({ length: this.shape.numLayers }, (_, l) => grow(this.values[l], valueWidth));
    this.capacity = capacity;
  }

  /** Stores rows for positions [start, start + rows) of one layer: [t, keyWidth] and [t, valueWidth]. */
  write(layer: number, start: number, keyRows: Float32Array, valueRows: Float32Array): void {
    this.keys[layer].set(keyRows, start * this.shape.keyWidth);
    this.values[layer].set(valueRows, start * this.shape.valueWidth);
  }

  /** Zero-copy views of the first `numTokens` positions of one layer. */
  view(layer: number, numTokens: number): { keys: Float32Array; values: Float32Array } {
    const { keyWidth, valueWidth } = this.shape;
    return { keys: this.keys[layer].subarray(0, numTokens * keyWidth), values: this.values[layer].subarray(0, numTokens * valueWidth) };
  }

}
