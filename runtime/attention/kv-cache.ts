// The KV cache: one pool of fixed-size blocks, allocated once, that every sequence shares.
// A sequence holds only the blocks its tokens fill (its BlockTable); block-manager.ts hands
// them out. Per layer each plane (keys, values) is head-major, [heads, numBlocks, blockSize,
// headDim], so the attention graph gathers a sequence's blocks along axis 1 into [heads,
// tokens, headDim]: that gather is the one copy attention makes (it replaces the transpose a
// token-major layout needs), and the pool itself is passed to ONNX Runtime zero-copy.

/** What one token stores per layer (kvCacheShape in kv-cache-shape.ts derives it from a model). */
export interface KvCacheShape {
  numLayers: number;
  /** Heads a token's rows are split into: the kv heads, or 1 for MLA's one shared latent row. */
  numKvHeads: number;
  /** Key values per head: headDim, or MLA's kvLoraRank + qkRopeHeadDim. */
  keyHeadDim: number;
  /** Value values per head: headDim, or 0 for MLA (its values come from the latent: no value plane). */
  valueHeadDim: number;
}

/** A sequence's place in the pool: block i holds its positions [i * blockSize, (i + 1) * blockSize). */
export interface BlockTable {
  blockIds: number[];
  /** Positions whose keys and values are stored (the model runner advances it after each step). */
  numCachedTokens: number;
}

export class KvCachePool {
  readonly keys: Float32Array[];
  /** Empty arrays when the model caches no values (MLA). */
  readonly values: Float32Array[];

  /**
   * `allocate` hands out the planes' zeroed memory: by default plain arrays; the WebAssembly
   * attention kernel passes views of its own memory so it can read the blocks in place.
   */
  constructor(
    readonly shape: KvCacheShape,
    readonly numBlocks: number,
    readonly blockSize: number,
    allocate: (floats: number) => Float32Array = (floats) => new Float32Array(floats),
  ) {
    if (!Number.isSafeInteger(numBlocks) || numBlocks < 1) throw new RangeError(`the KV cache needs at least one block (got ${numBlocks})`);
    // Zero-filled by the allocator page by page as blocks are first written, so the
    // resident size grows with use rather than with the flag.
    const slots = numBlocks * blockSize * shape.numKvHeads;
    this.keys = Array.from({ length: shape.numLayers }, () => allocate(slots * shape.keyHeadDim));
    this.values = Array.from({ length: shape.numLayers }, () =>
      shape.valueHeadDim > 0 ? allocate(slots * shape.valueHeadDim) : new Float32Array(0),
    );
  }

  /** Floats of all the planes of a pool of this shape and size. */
  static planeFloats(shape: KvCacheShape, numBlocks: number, blockSize: number): number {
    return shape.numLayers * numBlocks * blockSize * shape.numKvHeads * (shape.keyHeadDim + shape.valueHeadDim);
  }

  get numTokens(): number {
    return this.numBlocks * this.blockSize;
  }

  /** Bytes one cached token takes across all layers (fp32 keys and values). */
  static bytesPerToken(shape: KvCacheShape): number {
    return 4 * shape.numLayers * shape.numKvHeads * (shape.keyHeadDim + shape.valueHeadDim);
  }

  /** Dims of one layer's key (or value) plane as the attention graphs take it. */
  planeDims(headDim: number): number[] {
    return [this.shape.numKvHeads, this.numBlocks, this.blockSize, headDim];
  }

  /** Stores rows [t, heads * keyHeadDim] (and [t, heads * valueHeadDim]) for positions [start, start + t) of one layer. */
  write(layer: number, table: BlockTable, start: number, keyRows: Float32Array, valueRows: Float32Array): void {
    const { numKvHeads, keyHeadDim, valueHeadDim } = this.shape;
    const numTokens = keyRows.length / (numKvHeads * keyHeadDim);
    const [keys, values] = [this.keys[layer], this.values[layer]];
    for (let i = 0; i < numTokens; i++) {
      const position = start + i;
      const block = table.blockIds[Math.floor(position / this.blockSize)];
      const slot = block * this.blockSize + (position % this.blockSize);
      for (let head = 0; head < numKvHeads; head++) {
        const to = head * this.numBlocks * this.blockSize + slot;
        const row = i * numKvHeads + head;
        copyRow(keyRows, row * keyHeadDim, keys, to * keyHeadDim, keyHeadDim);
        copyRow(valueRows, row * valueHeadDim, values, to * valueHeadDim, valueHeadDim);
      }
    }
  }
}

/** A plain loop: a subarray() per head row cost more in allocation than the copy itself. */
function copyRow(from: Float32Array, fromIndex: number, to: Float32Array, toIndex: number, length: number): void {
  for (let e = 0; e < length; e++) to[toIndex + e] = from[fromIndex + e];
}
