import { describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  decodeToFloat32,
  dtypeByteSize,
  encodeFromFloat32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from '../../models/checkpoint/dtype.ts';

const isNanBits16 = (bits: number, expMask: number, mantMask: number): boolean => (bits & expMask) === expMask && (bits & mantMask) !== 0;

/** Independent reference: nearest finite half by search over all of them, ties to even. */
function referenceF16(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  // Beyond max + half an ulp (65520) rounds to inf.
  if (magnitude >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (f16BitsToF32(mid) <= magnitude) lo = mid;
    else hi = mid - 1;
  }
  const below = lo;
  if (below === 0x7bff || f16BitsToF32(below) === magnitude) return sign | below;
  const distBelow = magnitude - f16BitsToF32(below);
  const distAbove = f16BitsToF32(below + 1) - magnitude;
  if (distBelow < distAbove) return sign | below;
  if (distAbove < distBelow) return sign | (below + 1);
  return sign | (below % 2 === 0 ? below : below + 1);
}

describe('F16 <-> F32', () => {
  it('decodes edge values exactly', () => {
    expect(f16BitsToF32(0x0000)).toBe(0);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16BitsToF32(0x0400)).toBe(2 ** -14);
    expect(f16BitsToF32(0x8001)).toBe(-(2 ** -24));
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(f16BitsToF32(0x7e00))).toBe(true);
    expect(Number.isNaN(f16BitsToF32(0x7c01))).toBe(true);
  });

  it('round-trips every non-NaN half pattern and keeps NaNs NaN with their sign', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const back = f32ToF16Bits(f16BitsToF32(bits));
      if (isNanBits16(bits, 0x7c00, 0x03ff)) {
        expect(isNanBits16(back, 0x7c00, 0x03ff)).toBe(true);
        expect(back & 0x8000).toBe(bits & 0x8000);
      } else if (back !== bits) {
        throw new Error(`0x${bits.toString(16)} came back as 0x${back.toString(16)}`);
      }
    }
  });

  it('rounds to nearest even at ties, in normals and subnormals', () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie, 0x3c00 even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, 0x3c02 even
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // half the smallest subnormal: tie to 0
    expect(f32ToF16Bits(2 ** -25 * 1.5)).toBe(0x0001);
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 subnormal ulps
    expect(f32ToF16Bits(2 ** -26)).toBe(0x0000);
    expect(f32ToF16Bits(-(2 ** -30))).toBe(0x8000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // tie with "65536" rounds to even = inf
    expect(f32ToF16Bits(1e10)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f32ToF16Bits(1023.5 * 2 ** -24)).toBe(0x0400); // largest subnormal rounds up to min normal
  });

  it('matches a brute-force nearest-even reference on random float32 values', () => {
    const values = new Float32Array(20000);
    let state = 12345;
    for (let i = 0; i < values.length; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const exponent = (state % 44) - 30; // 2^-30 .. 2^13: subnormal through overflow
      values[i] = (state & 1 ? -1 : 1) * (1 + ((state >>> 8) % 4096) / 4096) * 2 ** exponent;
    }
    const mismatches = [...values].filter((value) => f32ToF16Bits(value) !== referenceF16(value));
    expect(mismatches).toEqual([]);
  });
});

describe('BF16 <-> F32', () => {
  it('is the top half of a float32', () => {
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0xc000)).toBe(-2);
    expect(Object.is(bf16BitsToF32(0x8000), -0)).toBe(true);
    expect(bf16BitsToF32(0x7f80)).toBe(Infinity);
    expect(bf16BitsToF32(0x0001)).toBe(2 ** -133); // subnormal
    expect(Number.isNaN(bf16BitsToF32(0x7fc0))).toBe(true);
  });

  it('round-trips every non-NaN bfloat16 pattern', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const back = f32ToBf16Bits(bf16BitsToF32(bits));
      if (isNanBits16(bits, 0x7f80, 0x007f)) expect(isNanBits16(back, 0x7f80, 0x007f)).toBe(true);
      else if (back !== bits) throw new Error(`0x${bits.toString(16)} came back as 0x${back.toString(16)}`);
    }
  });

  it('rounds to nearest even and overflows to inf', () => {
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80);
    expect(f32ToBf16Bits(-3.4028234663852886e38)).toBe(0xff80);
    expect(f32ToBf16Bits(Number.NaN) & 0x7fc0).toBe(0x7fc0);
  });
});

describe('array encode/decode', () => {
  it('round-trips arrays in each dtype', () => {
    const values = new Float32Array([0, -0, 1.5, -3.25, 65504, 2 ** -24, Infinity, -Infinity, Number.NaN]);
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const encoded = encodeFromFloat32(dtype, values);
      expect(encoded.byteLength).toBe(values.length * (dtype === 'F32' ? 4 : 2));
      const copy = new Uint8Array(encoded.byteLength);
      copy.set(encoded);
      const decoded = decodeToFloat32(dtype, copy, values.length);
      const expected = dtype === 'BF16' ? [0, -0, 1.5, -3.25, 65536, 2 ** -24, Infinity, -Infinity, Number.NaN] : [...values];
      expect([...decoded]).toEqual(expected);
      expect(Object.is(decoded[1], -0)).toBe(true);
    }
  });

  it('knows the element size of every safetensors dtype', () => {
    expect(dtypeByteSize('I64')).toBe(8);
    expect(dtypeByteSize('F8_E4M3')).toBe(1);
    expect(dtypeByteSize('BF16')).toBe(2);
    expect(dtypeByteSize('Q4_K')).toBeNull();
  });
});
