// 4-bit weight-only quantisation in the layout of ONNX Runtime's com.microsoft.MatMulNBits:
// per output row, blocks of `blockSize` input values share a float scale; values are stored
// two to a byte, low nibble first. Symmetric: no zero-point tensor, MatMulNBits then takes 8
// as every block's zero point, and its kernels run faster than with explicit zero points.

/**
 * The default block: 64 values a scale, 4.5 bits a weight on disk (the size of llama.cpp's
 * Q4_0). ONNX Runtime holds a 4-bit weight as a prepacked copy (0.5 + 8 / block bytes) plus the
 * original scales (4 / block), 1.22x the compiled bytes at 64 against 1.4x at 32.
 */
export const INT4_BLOCK_SIZE = 64;

export interface Int4Weights {
  rows: number; // N (output features)
  cols: number; // K (input features)
  blockSize: number;
  /** [N, numBlocks, blockSize / 2] */
  packed: Uint8Array;
  /** [N * numBlocks] */
  scales: Float32Array;
}

/** MatMulNBits' implied zero point when no zero-point input is given. */
const ZERO_POINT = 8;

/**
 * Symmetric block quantisation as llama.cpp's q4_0 does it: the value of largest magnitude
 * maps to -8, so the full range -8..7 is used and zero stays exactly zero. `weight` is
 * [rows, cols], the Hugging Face Linear layout, which is already MatMulNBits' B layout.
 */
export function quantizeInt4(weight: Float32Array, rows: number, cols: number, blockSize = INT4_BLOCK_SIZE): Int4Weights {
  if (weight.length !== rows * cols) throw new Error(`quantizeInt4: expected ${rows * cols} values, got ${weight.length}`);
  const numBlocks = Math.ceil(cols / blockSize);
  const blobSize = blockSize / 2;
  const packed = new Uint8Array(rows * numBlocks * blobSize);
  const scales = new Float32Array(rows * numBlocks);
  for (let r = 0; r < rows; r++) {
    const rowEnd = (r + 1) * cols;
    for (let blk = 0; blk < numBlocks; blk++) {
      const start = r * cols + blk * blockSize;
      const end = Math.min(rowEnd, start + blockSize);
      const scale = blockScale(weight, start, end);
      const at = r * numBlocks + blk;
      scales[at] = scale;
      packBlock(weight, start, end, scale, packed, at * blobSize);
    }
  }
  return { rows, cols, blockSize, packed, scales };
}

/** extreme / -8 for the block's value of largest magnitude (the first one on a tie); 1 for an all-zero block. */
function blockScale(weight: Float32Array, start: number, end: number): number {
  let extreme = 0;
  let largest = 0;
  for (let i = start; i < end; i++) {
    const v = weight[i];
    const magnitude = v < 0 ? -v : v;
    if (magnitude > largest) {
      largest = magnitude;
      extreme = v;
    }
  }
  return extreme === 0 ? 1 : Math.fround(extreme / -ZERO_POINT);
}

/**
 * q = min(15, round(x / scale) + 8), two codes a byte, low nibble first. round(v) + 8 is
 * computed as trunc(v + 8.5): v >= -8 here (the extreme maps to -8), so the sum is positive
 * and truncation is floor; and a quotient of two f32 values is either exactly a half-integer
 * (where both round up) or far more than one f64 ulp from one, so adding 8.5 never moves it
 * across an integer. Twice as fast as Math.round and Math.max, with the same codes.
 */
function packBlock(weight: Float32Array, start: number, end: number, scale: number, packed: Uint8Array, at: number): void {
  let out = at;
  for (let i = start; i < end; i += 2) {
    let low = (weight[i] / scale + 8.5) | 0;
    if (low > 15) low = 15;
    let high = i + 1 < end ? (weight[i + 1] / scale + 8.5) | 0 : 0;
    if (high > 15) high = 15;
    packed[out++] = low | (high << 4);
  }
}

/** The float weights a quantised matrix stands for; tests compare against it. */
export function dequantizeInt4(q: Int4Weights): Float32Array {
  const { rows, cols, blockSize } = q;
  const numBlocks = Math.ceil(cols / blockSize);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const blk = Math.floor(c / blockSize);
      const j = c - blk * blockSize;
      const byte = q.packed[(r * numBlocks + blk) * (blockSize / 2) + (j >> 1)];
      const value = (byte >> ((j & 1) * 4)) & 15;
      out[r * cols + c] = (value - ZERO_POINT) * q.scales[r * numBlocks + blk];
    }
  }
  return out;
}
