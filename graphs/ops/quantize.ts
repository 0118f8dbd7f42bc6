// 4-bit weight-only quantisation in the layout of ONNX Runtime's com.microsoft.MatMulNBits:
// per output row, blocks of `blockSize` input values share a float scale; values are stored
// two to a byte, low nibble first. Symmetric: no zero-point tensor, MatMulNBits then takes 8
// as every block's zero point, and its kernels run faster than with explicit zero points.

export const INT4_BLOCK_SIZE = 32;

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
    for (let blk = 0; blk < numBlocks; blk++) {
      const start = r * cols + blk * blockSize;
      const end = r * cols + Math.min(cols, (blk + 1) * blockSize);
      let extreme = 0;
      for (let i = start; i < end; i++) if (Math.abs(weight[i]) > Math.abs(extreme)) extreme = weight[i];
      const scale = extreme === 0 ? 1 : Math.fround(extreme / -ZERO_POINT);
      scales[r * numBlocks + blk] = scale;
      const blob = (r * numBlocks + blk) * blobSize;
      for (let i = start; i < end; i++) {
        const q = Math.min(15, Math.max(0, Math.round(weight[i] / scale) + ZERO_POINT));
        const j = i - start;
        packed[blob + (j >> 1)] |= q << ((j & 1) * 4);
      }
    }
  }
  return { rows, cols, blockSize, packed, scales };
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
