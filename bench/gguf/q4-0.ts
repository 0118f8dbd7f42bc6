// llama.cpp's Q4_0 blocks from moe-server's own 4-bit quantiser (graphs/ops/quantize.ts), so
// both engines run the same 4-bit codes. A Q4_0 block is 32 consecutive weights along the
// input dimension (ne0): an f16 scale d, then 16 bytes whose low nibbles hold weights 0..15 and
// high nibbles weights 16..31; weight = (q - 8) * d. MatMulNBits' symmetric blocks are the same
// 32 weights with the same codes (zero point 8) but a float32 scale and the nibbles paired
// (2j, 2j+1) per byte. So the codes are bit-identical and only the scale differs: Q4_0 holds
// it rounded to f16 (nearest even), a relative change of at most 2^-11 for every weight of a
// block (subnormal scales below 6.1e-5 lose more).
import { f16BitsToF32, f32ToF16Bits } from '../../models/checkpoint/dtype.ts';
import { type Int4Weights, quantizeInt4 } from '../../graphs/ops/quantize.ts';

export const Q4_0_BLOCK_SIZE = 32;
export const Q4_0_BLOCK_BYTES = 18;
const HALF = Q4_0_BLOCK_SIZE / 2;

/** Repacks MatMulNBits-layout 4-bit weights ([rows, cols], blocks of 32) as Q4_0 blocks. */
export function q4_0FromInt4(q: Int4Weights): Uint8Array {
  if (q.blockSize !== Q4_0_BLOCK_SIZE || q.cols % Q4_0_BLOCK_SIZE !== 0) {
    throw new RangeError(`Q4_0 needs blocks of 32 and whole blocks per row (block ${q.blockSize}, ${q.cols} columns)`);
  }
  const numBlocks = q.rows * (q.cols / Q4_0_BLOCK_SIZE);
  const out = new Uint8Array(numBlocks * Q4_0_BLOCK_BYTES);
  for (let b = 0; b < numBlocks; b++) {
    const scale = q.scales[b];
    if (!Number.isFinite(scale) || Math.abs(scale) > 65504) throw new RangeError(`block ${b}: scale ${scale} does not fit an f16`);
    const bits = f32ToF16Bits(scale);
    const o = b * Q4_0_BLOCK_BYTES;
    out[o] = bits & 0xff;
    out[o + 1] = bits >>> 8;
    const src = b * HALF; // MatMulNBits blob: byte k holds weights 2k (low) and 2k+1 (high)
    const code = (j: number): number => (q.packed[src + (j >> 1)] >> ((j & 1) * 4)) & 15;
    for (let j = 0; j < HALF; j++) out[o + 2 + j] = code(j) | (code(j + HALF) << 4);
  }
  return out;
}

/** Quantises a [rows, cols] float matrix (Hugging Face layout) straight to Q4_0 bytes. */
export function encodeQ4_0(values: Float32Array, rows: number, cols: number): Uint8Array {
  return q4_0FromInt4(quantizeInt4(values, rows, cols, Q4_0_BLOCK_SIZE));
}

/** The weights Q4_0 bytes stand for (as ggml's dequantize_row_q4_0 computes them). */
export function decodeQ4_0(bytes: Uint8Array): Float32Array {
  const numBlocks = bytes.length / Q4_0_BLOCK_BYTES;
  const out = new Float32Array(numBlocks * Q4_0_BLOCK_SIZE);
  for (let b = 0; b < numBlocks; b++) {
    const o = b * Q4_0_BLOCK_BYTES;
    const d = f16BitsToF32(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < HALF; j++) {
      const byte = bytes[o + 2 + j];
      out[b * Q4_0_BLOCK_SIZE + j] = ((byte & 15) - 8) * d;
      out[b * Q4_0_BLOCK_SIZE + j + HALF] = ((byte >> 4) - 8) * d;
    }
  }
  return out;
}

/** The 4-bit codes of Q4_0 bytes, one per weight (0..15), in weight order. */
export function q4_0Codes(bytes: Uint8Array): Uint8Array {
  const numBlocks = bytes.length / Q4_0_BLOCK_BYTES;
  const out = new Uint8Array(numBlocks * Q4_0_BLOCK_SIZE);
  for (let b = 0; b < numBlocks; b++) {
    for (let j = 0; j < HALF; j++) {
      const byte = bytes[b * Q4_0_BLOCK_BYTES + 2 + j];
      out[b * Q4_0_BLOCK_SIZE + j] = byte & 15;
      out[b * Q4_0_BLOCK_SIZE + j + HALF] = byte >> 4;
    }
  }
  return out;
}
