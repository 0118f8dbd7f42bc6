// 4-bit weight-only quantisation in the layout of ONNX Runtime's com.microsoft.MatMulNBits:
// per output row, blocks of `blockSize` input values share a float scale and a 4-bit zero
// point; values are stored two to a byte, low nibble first.

export const INT4_BLOCK_SIZE = 32;

export interface Int4Weights {
  rows: number; // N (output features)
  cols: number; // K (input features)
  blockSize: number;
  /** [N, numBlocks, blockSize / 2] */
  packed: Uint8Array;
  /** [N * numBlocks] */
  scales: Float32Array;
  /** [N, ceil(numBlocks / 2)], two zero points per byte, low nibble first */
  zeroPoints: Uint8Array;
}

/**
 * Asymmetric min/max quantisation with zero included in each block's range (so exact zeros
 * stay exact), as ONNX Runtime's own blockwise quantiser does. `weight` is [rows, cols], the
 * Hugging Face Linear layout, which is already MatMulNBits' B layout.
 */
export function quantizeInt4(weight: Float32Array, rows: number, cols: number, blockSize = INT4_BLOCK_SIZE): Int4Weights {
  if (weight.length !== rows * cols) throw new Error(`quantizeInt4: expected ${rows * cols} values, got ${weight.length}`);
  const numBlocks = Math.ceil(cols / blockSize);
  const blobSize = blockSize / 2;
  const zpStride = Math.ceil(numBlocks / 2);
  const packed = new Uint8Array(rows * numBlocks * blobSize);
  const scales = new Float32Array(rows * numBlocks);
  const zeroPoints = new Uint8Array(rows * zpStride);
  for (let r = 0; r < rows; r++) {
    for (let blk = 0; blk < numBlocks; blk++) {
      const start = r * cols + blk * blockSize;
      const end = r * cols + Math.min(cols, (blk + 1) * blockSize);
      let min = 0;
      let max = 0;
      for (let i = start; i < end; i++) {
        const v = weight[i];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const scale = max > min ? (max - min) / 15 : 1;
      const zp = Math.min(15, Math.max(0, Math.round(-min / scale)));
      scales[r * numBlocks + blk] = scale;
      zeroPoints[r * zpStride + (blk >> 1)] |= zp << ((blk & 1) * 4);
      const blob = (r * numBlocks + blk) * blobSize;
      for (let i = start; i < end; i++) {
        const q = Math.min(15, Math.max(0, Math.round(weight[i] / scale) + zp));
        const j = i - start;
        packed[blob + (j >> 1)] |= q << ((j & 1) * 4);
      }
    }
  }
  return { rows, cols, blockSize, packed, scales, zeroPoints };
}

/** The float weights a quantised matrix stands for; tests compare against it. */
export function dequantizeInt4(q: Int4Weights): Float32Array {
  const { rows, cols, blockSize } = q;
  const numBlocks = Math.ceil(cols / blockSize);
  const zpStride = Math.ceil(numBlocks / 2);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const blk = Math.floor(c / blockSize);
      const j = c - blk * blockSize;
      const byte = q.packed[(r * numBlocks + blk) * (blockSize / 2) + (j >> 1)];
      const value = (byte >> ((j & 1) * 4)) & 15;
      const zp = (q.zeroPoints[r * zpStride + (blk >> 1)] >> ((blk & 1) * 4)) & 15;
      out[r * cols + c] = (value - zp) * q.scales[r * numBlocks + blk];
    }
  }
  return out;
}
