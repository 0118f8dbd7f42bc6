// The WebAssembly attention kernel (paged-attention.wat) and the memory it reads: the KV
// cache's planes live inside the kernel's WebAssembly.Memory, so the kernel reads blocks in
// place while ONNX Runtime (the prompt path) still gets zero-copy Float32Array views of them.
// The text is the source: wabt assembles it once per thread at startup (a few ms), so no
// binary sits in git.
import { readFileSync } from 'node:fs';
import wabt from 'wabt';

const WASM_PAGE = 65536;
/** A 32-bit memory's limit: 65536 pages. A cache larger than this runs on ONNX Runtime alone. */
const MAX_PAGES = 65536;
/** Views start on cache-line boundaries (also keeps the kernel's 16-byte vector loads aligned). */
const ALIGN = 64;

let compiling: Promise<WebAssembly.Module> | null = null;

/** The kernel module, assembled on first use in this thread and shared afterwards. */
export function compilePagedAttentionKernel(): Promise<WebAssembly.Module> {
  compiling ??= (async () => {
    const assembler = await wabt();
    const source = readFileSync(new URL('./paged-attention.wat', import.meta.url), 'utf8');
    const parsed = assembler.parseWat('paged-attention.wat', source, { simd: true });
    try {
      // A copy typed over a plain ArrayBuffer, as WebAssembly.Module wants.
      return new WebAssembly.Module(new Uint8Array(parsed.toBinary({}).buffer));
    } finally {
      parsed.destroy();
    }
  })();
  return compiling;
}

/** How the kernel reads one shard's cache: its query heads, row widths and softmax scale. */
export interface KernelLayout {
  /** Query heads; head h reads kv head floor(h / (numHeads / numKvHeads)). */
  numHeads: number;
  numKvHeads: number;
  /** Floats of a key row (the dot product's length). */
  keyDim: number;
  /** Floats of a value row read, and the stride between value rows (MLA: a prefix of the key row). */
  valueDim: number;
  valueRowFloats: number;
  scale: number;
  numBlocks: number;
  blockSize: number;
}

/** Query rows one kernel call takes (the engine sends it decoding tokens, one query each). */
export const KERNEL_MAX_QUERIES = 16;

type AttendFn = (
  q: number,
  out: number,
  k: number,
  v: number,
  table: number,
  start: number,
  queries: number,
  heads: number,
  group: number,
  keyDim: number,
  valueDim: number,
  vRowBytes: number,
  kHeadStride: number,
  vHeadStride: number,
  blockSize: number,
  scale: number,
  scores: number,
) => void;

export class PagedAttentionKernel {
  private readonly memory: WebAssembly.Memory;
  private used = 0;
  private readonly attendFn: AttendFn;
  private readonly q: Float32Array;
  private readonly out: Float32Array;
  private readonly table: Int32Array;
  private readonly scores: Float32Array;

  /**
   * A kernel with room for `planeFloats` floats of cache planes (allocated with floats()), or
   * null when the kernel can't serve this layout: rows that aren't multiples of 4 floats, a
   * cache beyond a 32-bit memory, or a memory the process cannot reserve.
   */
  static create(module: WebAssembly.Module, layout: KernelLayout, planeFloats: number): PagedAttentionKernel | null {
    const { keyDim, valueDim, numHeads, numBlocks, blockSize } = layout;
    if (keyDim % 4 !== 0 || valueDim % 4 !== 0 || layout.valueRowFloats % 4 !== 0) return null;
    const scratchFloats = KERNEL_MAX_QUERIES * numHeads * (keyDim + valueDim) + numBlocks + (numBlocks * blockSize + 4);
    const pages = Math.ceil((4 * (planeFloats + scratchFloats) + 8 * ALIGN) / WASM_PAGE);
    if (pages > MAX_PAGES) return null;
    try {
      return new PagedAttentionKernel(module, layout, pages);
    } catch (err) {
      // The address space for the memory could not be reserved (a ulimit, say): ONNX Runtime attends instead.
      if (err instanceof RangeError) return null;
      throw err;
    }
  }

  private constructor(
    module: WebAssembly.Module,
    readonly layout: KernelLayout,
    pages: number,
  ) {
    // Pages are zero-filled by the OS on first touch: the resident size grows with use.
    this.memory = new WebAssembly.Memory({ initial: pages });
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.attendFn = instance.exports.attend as AttendFn;
    const { numHeads, keyDim, valueDim, numBlocks, blockSize } = layout;
    this.q = this.floats(KERNEL_MAX_QUERIES * numHeads * keyDim);
    this.out = this.floats(KERNEL_MAX_QUERIES * numHeads * valueDim);
    this.table = new Int32Array(this.memory.buffer, this.reserve(numBlocks), numBlocks);
    this.scores = this.floats(numBlocks * blockSize + 4);
  }

  /** A zeroed view of `count` floats inside the kernel's memory (the cache planes). */
  floats(count: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.reserve(count), count);
  }

  private reserve(count: number): number {
    const offset = Math.ceil(this.used / ALIGN) * ALIGN;
    if (offset + 4 * count > this.memory.buffer.byteLength) throw new RangeError('the attention kernel memory is full');
    this.used = offset + 4 * count;
    return offset;
  }

  /**
   * Attention of `queries` rows of one sequence, the first at position `start`, over its
   * blocks `blockIds` of one layer's planes (views from floats()). q is [queries, numHeads,
   * keyDim]; the output [queries, numHeads * valueDim] is written into `out` at `outOffset`.
   */
  attend(
    keys: Float32Array,
    values: Float32Array,
    blockIds: ArrayLike<number>,
    start: number,
    queries: number,
    q: Float32Array,
    out: Float32Array,
    outOffset: number,
  ): void {
    const { numHeads, numKvHeads, keyDim, valueDim, valueRowFloats, scale, numBlocks, blockSize } = this.layout;
    if (queries > KERNEL_MAX_QUERIES)
      throw new RangeError(`the attention kernel takes at most ${KERNEL_MAX_QUERIES} queries (got ${queries})`);
    if (keys.buffer !== this.memory.buffer || values.buffer !== this.memory.buffer)
      throw new Error('the cache planes must live in the kernel memory');
    const blocks = Math.ceil((start + queries) / blockSize);
    for (let i = 0; i < blocks; i++) this.table[i] = blockIds[i];
    this.q.set(q.subarray(0, queries * numHeads * keyDim));
    const headStride = (rowFloats: number) => 4 * numBlocks * blockSize * rowFloats;
    this.attendFn(
      this.q.byteOffset,
      this.out.byteOffset,
      keys.byteOffset,
      values.byteOffset,
      this.table.byteOffset,
      start,
      queries,
      numHeads,
      numHeads / numKvHeads,
      keyDim,
      valueDim,
      4 * valueRowFloats,
      headStride(keyDim),
      headStride(valueRowFloats),
      blockSize,
      scale,
      this.scores.byteOffset,
    );
    out.set(this.out.subarray(0, queries * numHeads * valueDim), outOffset);
  }
}
