// The KV cache: one pool of fixed-size blocks, allocated once, that every sequence shares.
// A sequence holds only the blocks its tokens fill (its BlockTable); block-manager.ts hands
// them out. Per layer the pool is head-major, [kvHeads, numBlocks, blockSize, headDim], so the
// attention graph gathers a sequence's blocks along axis 1 into [kvHeads, tokens, headDim]:
// that gather is the one copy attention makes (it replaces the transpose a token-major
// layout needs), and the pool itself is passed to ONNX Runtime zero-copy.

export interface KvCacheShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

/** A sequence's place in the pool: block i holds its positions [i * blockSize, (i + 1) * blockSize). */
export interface BlockTable {
  blockIds: number[];
  /** Positions whose keys and values are stored (the model runner advances it after each step). */
  numCachedTokens: number;
}

export class KvCachePool {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  /** Floats of one token in one layer of one plane (keys or values). */
  readonly rowWidth: number;

  constructor(
    readonly shape: KvCacheShape,
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    if (!Number.isSafeInteger(numBlocks) || numBlocks < 1) throw new RangeError(`the KV cache needs at least one block (got ${numBlocks})`);
    this.rowWidth = shape.numKvHeads * shape.headDim;
    // Zero-filled by the allocator page by page as blocks are first written, so the
    // resident size grows with use rather than with the flag.
    const planeLength = numBlocks * blockSize * this.rowWidth;
    this.keys = Array.from({ length: shape.numLayers }, () => new Float32Array(planeLength));
    this.values = Array.from({ length: shape.numLayers }, () => new Float32Array(planeLength));
  }

  get numTokens(): number {
    return this.numBlocks * this.blockSize;
  }

  /** Bytes one cached token takes across all layers (keys and values, fp32). */
  static bytesPerToken(shape: KvCacheShape): number {
    return shape.numLayers * 2 * shape.numKvHeads * shape.headDim * 4;
  }

  /** Stores key/value rows ([t, kvHeads * headDim]) for positions [start, start + t) of one layer. */
  write(layer: number, table: BlockTable, start: number, keyRows: Float32Array, valueRows: Float32Array): void {
    const { numKvHeads, headDim } = this.shape;
    const numTokens = keyRows.length / this.rowWidth;
    const keys = this.keys[layer];
    const values = this.values[layer];
    for (let i = 0; i < numTokens; i++) {
      const position = start + i;
      const block = table.blockIds[Math.floor(position / this.blockSize)];
      const slot = block * this.blockSize + (position % this.blockSize);
      for (let head = 0; head < numKvHeads; head++) {
        const from = (i * numKvHeads + head) * headDim;
        const to = (head * this.numBlocks * this.blockSize + slot) * headDim;
        keys.set(keyRows.subarray(from, from + headDim), to);
        values.set(valueRows.subarray(from, from + headDim), to);
      }
    }
  }
}
