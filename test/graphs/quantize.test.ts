// 4-bit block quantisation in MatMulNBits' layout: nibble order, scales, error bound.
import { describe, expect, it } from 'vitest';
import { dequantizeInt4, quantizeInt4 } from '../../graphs/ops/quantize.ts';

describe('quantizeInt4', () => {
  it('maps the value of largest magnitude to -8 and packs the low nibble first', () => {
    const row = new Float32Array(32);
    row[0] = -4; // extreme: scale = -4 / -8 = 0.5, q = -8 + 8 = 0
    row[1] = 3.5; // q = 7 + 8 = 15
    row[2] = 0.5; // q = 1 + 8 = 9
    const q = quantizeInt4(row, 1, 32);
    expect(q.scales[0]).toBe(0.5);
    expect(q.packed[0]).toBe(0 | (15 << 4));
    expect(q.packed[1]).toBe(9 | (8 << 4)); // row[3] = 0 -> q = 8
    expect(Array.from(dequantizeInt4(q).subarray(0, 4))).toEqual([-4, 3.5, 0.5, 0]);
  });

  it('keeps values within half a step (a full step where 7 steps clamp), and zeros exact', () => {
    let state = 7;
    const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 2;
    const rows = 5;
    const cols = 96;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => (i % 17 === 0 ? 0 : random() * (1 + (i % 5))));
    const q = quantizeInt4(w, rows, cols);
    const back = dequantizeInt4(q);
    for (let i = 0; i < w.length; i++) {
      const scale = q.scales[Math.floor(i / cols) * (cols / 32) + Math.floor((i % cols) / 32)];
      // Only a value opposite the extreme and beyond 7.5 steps clamps to code 15.
      const clamped = w[i] / scale > 7.5;
      expect(Math.abs(back[i] - w[i])).toBeLessThanOrEqual(Math.abs(scale) * (clamped ? 1 : 0.5) + 1e-6);
      if (w[i] === 0) expect(back[i] === 0).toBe(true); // -0 or +0, both exact
    }
  });

  it('gives an all-zero block a usable scale', () => {
    const q = quantizeInt4(new Float32Array(64), 2, 32);
    expect(Array.from(dequantizeInt4(q))).toEqual(new Array(64).fill(0));
  });
});
