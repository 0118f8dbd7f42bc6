// The WebAssembly attention kernel against attention written out in float64: GQA, blocks
// scattered through the pool, a partial last block, several causal queries, and MLA's values
// read from a prefix of the key rows.
import { describe, expect, it } from 'vitest';
import {
  compilePagedAttentionKernel,
  KERNEL_MAX_QUERIES,
  type KernelLayout,
  PagedAttentionKernel,
} from '../../kernels/wasm/paged-attention-kernel.ts';

interface Case {
  name: string;
  layout: KernelLayout;
  /** Values come from the key plane (MLA). */
  valuesInKeys: boolean;
  start: number;
  queries: number;
}

const base = { numBlocks: 12, blockSize: 4 };
const cases: Case[] = [
  {
    name: 'GQA 4/2, head dim 64, one decoding query',
    layout: { ...base, numHeads: 4, numKvHeads: 2, keyDim: 64, valueDim: 64, valueRowFloats: 64, scale: 0.125 },
    valuesInKeys: false,
    start: 21,
    queries: 1,
  },
  {
    name: 'MHA, head dim 40 (a 4-float tail), 5 causal queries',
    layout: { ...base, numHeads: 3, numKvHeads: 3, keyDim: 40, valueDim: 40, valueRowFloats: 40, scale: 0.2 },
    valuesInKeys: false,
    start: 6,
    queries: 5,
  },
  {
    name: 'MLA: 4 heads on one latent row of 40, values its first 32',
    layout: { ...base, numHeads: 4, numKvHeads: 1, keyDim: 40, valueDim: 32, valueRowFloats: 40, scale: 0.3 },
    valuesInKeys: true,
    start: 0,
    queries: 7,
  },
  {
    name: 'the first token alone',
    layout: { ...base, numHeads: 2, numKvHeads: 1, keyDim: 16, valueDim: 16, valueRowFloats: 16, scale: 1 },
    valuesInKeys: false,
    start: 0,
    queries: 1,
  },
];

/** Plain float64 attention over the pool rows at the sequence's positions. */
function referenceAttention(c: Case, keys: Float32Array, values: Float32Array, blockIds: number[], q: Float32Array): Float64Array {
  const { numHeads, numKvHeads, keyDim, valueDim, valueRowFloats, scale, numBlocks, blockSize } = c.layout;
  const group = numHeads / numKvHeads;
  const rowAt = (kvHead: number, position: number) =>
    (kvHead * numBlocks + blockIds[Math.floor(position / blockSize)]) * blockSize + (position % blockSize);
  const out = new Float64Array(c.queries * numHeads * valueDim);
  for (let i = 0; i < c.queries; i++) {
    const len = c.start + i + 1;
    for (let h = 0; h < numHeads; h++) {
      const kv = Math.floor(h / group);
      const qAt = (i * numHeads + h) * keyDim;
      const scores = Array.from({ length: len }, (_, t) => {
        let dot = 0;
        for (let e = 0; e < keyDim; e++) dot += q[qAt + e] * keys[rowAt(kv, t) * keyDim + e];
        return dot * scale;
      });
      const max = Math.max(...scores);
      const weights = scores.map((s) => Math.exp(s - max));
      const sum = weights.reduce((a, b) => a + b, 0);
      for (let t = 0; t < len; t++) {
        for (let e = 0; e < valueDim; e++)
          out[(i * numHeads + h) * valueDim + e] += (weights[t] / sum) * values[rowAt(kv, t) * valueRowFloats + e];
      }
    }
  }
  return out;
}

describe('WebAssembly paged attention kernel', async () => {
  const module = await compilePagedAttentionKernel();

  it.each(cases)('$name: within 1e-5 of float64', (c) => {
    const { layout } = c;
    const rows = layout.numKvHeads * layout.numBlocks * layout.blockSize;
    const kernel = PagedAttentionKernel.create(module, layout, rows * (layout.keyDim + (c.valuesInKeys ? 0 : layout.valueRowFloats)));
    if (!kernel) throw new Error('the kernel refused a layout it serves');
    let seed = 7;
    const random = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    // Filled in place: the planes must stay views of the kernel's memory.
    const fill = (plane: Float32Array) => plane.forEach((_, i) => (plane[i] = random() * 2 - 1));
    const keys = kernel.floats(rows * layout.keyDim);
    fill(keys);
    const values = c.valuesInKeys ? keys : kernel.floats(rows * layout.valueRowFloats);
    if (!c.valuesInKeys) fill(values);
    // Blocks out of order and apart, so the table is really followed.
    const blockIds = [9, 2, 7, 0, 11, 4, 5];
    const q = Float32Array.from({ length: c.queries * layout.numHeads * layout.keyDim }, () => random() * 4 - 2);
    const width = layout.numHeads * layout.valueDim;
    const out = new Float32Array((c.queries + 2) * width).fill(Number.NaN);
    kernel.attend(keys, values, blockIds, c.start, c.queries, q, out, width);

    const expected = referenceAttention(c, keys, values, blockIds, q);
    const got = out.subarray(width, (c.queries + 1) * width);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
    expect(worst).toBeLessThan(1e-5);
    // Only the rows asked for are written.
    expect(out.subarray(0, width).every(Number.isNaN)).toBe(true);
    expect(out.subarray((c.queries + 1) * width).every(Number.isNaN)).toBe(true);
  });

  it('refuses rows it cannot step through, and more queries than its scratch holds', () => {
    const layout: KernelLayout = { ...base, numHeads: 2, numKvHeads: 2, keyDim: 18, valueDim: 18, valueRowFloats: 18, scale: 1 };
    expect(PagedAttentionKernel.create(module, layout, 1000)).toBeNull();
    const kernel = PagedAttentionKernel.create(module, { ...layout, keyDim: 16, valueDim: 16, valueRowFloats: 16 }, 2 * 2 * 48 * 16);
    const plane = kernel!.floats(2 * 48 * 16);
    const queries = KERNEL_MAX_QUERIES + 1;
    expect(() => kernel!.attend(plane, plane, [0], 0, queries, new Float32Array(queries * 32), new Float32Array(queries * 32), 0)).toThrow(
      /at most/,
    );
  });

  it('refuses planes that do not live in its memory', () => {
    const layout: KernelLayout = { ...base, numHeads: 1, numKvHeads: 1, keyDim: 16, valueDim: 16, valueRowFloats: 16, scale: 1 };
    const kernel = PagedAttentionKernel.create(module, layout, 48 * 32)!;
    const outside = new Float32Array(48 * 16);
    expect(() => kernel.attend(outside, outside, [0], 0, 1, new Float32Array(16), new Float32Array(16), 0)).toThrow(/kernel memory/);
  });
});
