import { describe, expect, it } from 'vitest';
import { dequantizeInt4, quantizeInt4 } from '../../graphs/ops/quantize.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../models/checkpoint/dtype.ts';
import { decodeQ4_0, encodeQ4_0, q4_0Codes, q4_0FromInt4 } from '../../bench/gguf/q4-0.ts';

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return Float32Array.from({ length: rows * cols }, () => next() * next() * 0.3);
}

/** The codes of ggml's reference quantize_row_q4_0 (ggml-quants.c), written from its definition. */
function ggmlReferenceCodes(x: Float32Array): Uint8Array {
  const f = Math.fround;
  const out = new Uint8Array(x.length);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8);
    const id = d ? f(1 / d) : 0;
    for (let j = 0; j < 32; j++) out[b * 32 + j] = Math.min(15, Math.trunc(f(f(x[b * 32 + j] * id) + 8.5)));
  }
  return out;
}

describe('Q4_0 from moe-server int4', () => {
  const rows = 64;
  const cols = 256;
  const w = randomMatrix(rows, cols, 7);
  const int4 = quantizeInt4(w, rows, cols, 32);
  const q = q4_0FromInt4(int4);

  it('writes 18 bytes per block of 32: f16 scale, then weights j and j+16 in the low and high nibble of byte j', () => {
    expect(q.length).toBe((rows * cols * 18) / 32);
    const block = Float32Array.from({ length: 32 }, (_, j) => (j === 5 ? -8 : j === 20 ? 7 : 0));
    const bytes = encodeQ4_0(block, 1, 32);
    expect(f16BitsToF32(bytes[0] | (bytes[1] << 8))).toBe(1); // scale = -8 / -8
    expect(bytes[2 + 5] & 15).toBe(0); // -8 -> code 0, low nibble of byte 5
    expect(bytes[2 + 4] >> 4).toBe(15); // weight 20 = 16 + 4 -> high nibble of byte 4, 7 -> code 15
    expect(bytes[2 + 0]).toBe(8 | (8 << 4)); // zeros -> code 8
  });

  it('keeps every 4-bit code of the int4 path: the codes are bit-identical', () => {
    const codes = q4_0Codes(q);
    const int4Codes = new Uint8Array(rows * cols);
    for (let i = 0; i < int4Codes.length; i++) int4Codes[i] = (int4.packed[i >> 1] >> ((i & 1) * 4)) & 15;
    expect(codes).toEqual(int4Codes);
  });

  it('differs from the int4 weights only by the scale rounded to f16 (relative 2^-11 at most)', () => {
    const fromQ4 = decodeQ4_0(q);
    const fromInt4 = dequantizeInt4(int4);
    const codes = q4_0Codes(q);
    let changed = 0;
    for (let i = 0; i < fromQ4.length; i++) {
      const scale = int4.scales[Math.floor(i / 32)];
      const f16Scale = f16BitsToF32(f32ToF16Bits(scale));
      expect(fromQ4[i]).toBe(Math.fround((codes[i] - 8) * f16Scale));
      expect(fromInt4[i]).toBe(Math.fround((codes[i] - 8) * scale));
      expect(Math.abs(fromQ4[i] - fromInt4[i])).toBeLessThanOrEqual(Math.abs(fromInt4[i]) * 2 ** -11 + 1e-12);
      if (fromQ4[i] !== fromInt4[i]) changed++;
    }
    expect(changed).toBeGreaterThan(0); // f32 scales are rarely f16-exact: the values are not bit-identical
  });

  it("chooses the codes of ggml's reference Q4_0 quantiser except at rounding ties", () => {
    const big = randomMatrix(256, 1024, 11);
    const ours = q4_0Codes(encodeQ4_0(big, 256, 1024));
    const ggml = ggmlReferenceCodes(big);
    let differ = 0;
    for (let i = 0; i < ours.length; i++) {
      if (ours[i] !== ggml[i]) {
        differ++;
        expect(Math.abs(ours[i] - ggml[i])).toBe(1);
      }
    }
    expect(differ / ours.length).toBeLessThan(1e-4);
  });

  it('refuses blocks other than 32 or rows that are not whole blocks', () => {
    expect(() => q4_0FromInt4(quantizeInt4(new Float32Array(64), 1, 64, 64))).toThrow(/blocks of 32/);
    expect(() => encodeQ4_0(new Float32Array(48), 1, 48)).toThrow(/whole blocks/);
  });
});
