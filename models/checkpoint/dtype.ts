// Conversions between the floating-point dtypes safetensors checkpoints use and float32.
// The engine computes in float32 on CPU, so F16/BF16 tensors are widened when read and
// narrowed (round-to-nearest-even, like PyTorch's .to()) when the synthetic writer emits them.
// Safetensors data is little-endian; the typed-array fast paths below assume a
// little-endian host, which every platform onnxruntime-node ships for is.

/** Float dtypes this project can decode to float32 and encode from it. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

const FLOAT_DTYPES: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16']);

/** Bytes per element of every dtype the safetensors format defines, to validate offsets. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

export function isFloatDtype(dtype: string): dtype is FloatDtype {
  return FLOAT_DTYPES.has(dtype);
}

/** Element size in bytes, or null for a dtype name the format does not define. */
export function dtypeByteSize(dtype: string): number | null {
  return Object.hasOwn(DTYPE_BYTES, dtype) ? DTYPE_BYTES[dtype] : null;
}

// One scratch word shared by the scalar conversions: reinterpreting float bits needs memory.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Exact float32 value of a half-precision bit pattern (subnormals, ±0, ±inf, NaN payloads). */
export function f16BitsToF32(bits: number): number {
  const sign = (bits & 0x8000) << 16;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) {
    // Zero or subnormal: mantissa * 2^-24 is exact in float32.
    const magnitude = mantissa * 2 ** -24;
    return sign === 0 ? magnitude : -magnitude;
  }
  // Inf/NaN keep their payload in the top mantissa bits; normals re-bias the exponent.
  const f32Exponent = exponent === 0x1f ? 0xff : exponent - 15 + 127;
  scratchU32[0] = (sign | (f32Exponent << 23) | (mantissa << 13)) >>> 0;
  return scratchF32[0];
}

/** Float32 value of a bfloat16 bit pattern: bfloat16 is the top half of a float32. */
export function bf16BitsToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

/** Half-precision bits of a float32 value, rounding to nearest even; overflow becomes inf. */
export function f32ToF16Bits(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0];
  const sign = (bits >>> 16) & 0x8000;
  const f32Exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (f32Exponent === 0xff) {
    // Keep NaN quiet and non-zero whatever its payload.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }
  const exponent = f32Exponent - 127 + 15;
  if (exponent >= 0x1f) return sign | 0x7c00;
  if (exponent <= 0) return sign | roundSubnormalF16(mantissa, exponent);
  const rest = mantissa & 0x1fff;
  let half = (exponent << 10) | (mantissa >>> 13);
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** Magnitude bits of a value below the smallest normal half (biased exponent <= 0). */
function roundSubnormalF16(mantissa: number, exponent: number): number {
  if (exponent < -10) return 0; // below half the smallest subnormal
  const significand = mantissa | 0x800000;
  const shift = 14 - exponent; // 14..24
  let half = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half += 1;
  return half;
}

/** Bfloat16 bits of a float32 value, rounding to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16Bits(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) {
    return ((bits >>> 16) | 0x40) & 0xffff;
  }
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

// Every half-precision pattern widened once (256 KiB): decoding a tensor becomes a lookup.
let f16Table: Float32Array | null = null;
function f16LookupTable(): Float32Array {
  if (f16Table === null) {
    f16Table = new Float32Array(0x10000);
    for (let bits = 0; bits < 0x10000; bits++) f16Table[bits] = f16BitsToF32(bits);
  }
  return f16Table;
}

/**
 * Decodes little-endian tensor bytes into float32. `bytes` must start at offset 0 of its own
 * ArrayBuffer (a freshly allocated buffer) so the typed views are aligned.
 */
export function decodeToFloat32(dtype: FloatDtype, bytes: Uint8Array, count: number): Float32Array {
  if (dtype === 'F32') {
    return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  }
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  const out = new Float32Array(count);
  if (dtype === 'F16') {
    const table = f16LookupTable();
    for (let i = 0; i < count; i++) out[i] = table[halves[i]];
  } else {
    const words = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) words[i] = halves[i] << 16;
  }
  return out;
}

/** Encodes float32 values as little-endian bytes of `dtype`. */
export function encodeFromFloat32(dtype: FloatDtype, values: Float32Array): Uint8Array {
  if (dtype === 'F32') {
    return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  }
  const halves = new Uint16Array(values.length);
  if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) halves[i] = f32ToF16Bits(values[i]);
  } else {
    // f32ToBf16Bits inlined over the raw words: this loop runs once per synthetic weight.
    const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) {
      const bits = words[i];
      const isNan = (bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0;
      halves[i] = isNan ? (bits >>> 16) | 0x40 : (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
    }
  }
  return new Uint8Array(halves.buffer);
}
