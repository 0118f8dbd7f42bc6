// y = x W^T (+ b) for a Hugging Face Linear weight [out, in], in fp32 or 4-bit.
import { type GraphBuilder, MS_DOMAIN } from '../onnx/graph-builder.ts';
import { quantizeInt4 } from './quantize.ts';

export type WeightPrecision = 'fp32' | 'int4';

export interface LinearWeight {
  /** [outFeatures, inFeatures], row-major, as Hugging Face stores it. */
  data: Float32Array;
  outFeatures: number;
  inFeatures: number;
  bias?: Float32Array;
}

export interface LinearOptions {
  precision: WeightPrecision;
  /** MatMulNBits accuracy_level: 4 computes with int8 activations (fast), 0 in fp32 (exact). */
  int4AccuracyLevel?: number;
}

export function linear(b: GraphBuilder, x: string, w: LinearWeight, name: string, opts: LinearOptions): string {
  // 4-bit needs whole blocks along K; odd shapes (tiny test models) fall back to fp32.
  const y =
    opts.precision === 'int4' && w.inFeatures % 32 === 0
      ? int4MatMul(b, x, w, name, opts.int4AccuracyLevel ?? 4)
      : // Gemm with transB reads the [out, in] layout as stored: no transpose at compile time.
        b.op('Gemm', [x, b.initializer(`${name}_w`, w.data, [w.outFeatures, w.inFeatures])], { transB: 1 });
  return w.bias ? b.op('Add', [y, b.initializer(`${name}_b`, w.bias, [w.outFeatures])]) : y;
}

function int4MatMul(b: GraphBuilder, x: string, w: LinearWeight, name: string, accuracyLevel: number): string {
  const q = quantizeInt4(w.data, w.outFeatures, w.inFeatures);
  const numBlocks = Math.ceil(w.inFeatures / q.blockSize);
  const packed = b.initializer(`${name}_q4`, q.packed, [w.outFeatures, numBlocks, q.blockSize / 2]);
  const scales = b.initializer(`${name}_scales`, q.scales, [w.outFeatures * numBlocks]);
  const attrs = { K: w.inFeatures, N: w.outFeatures, bits: 4, block_size: q.blockSize, accuracy_level: accuracyLevel };
  return b.op('MatMulNBits', [x, packed, scales], attrs, MS_DOMAIN);
}

/** Stacks Linear weights along the output dimension so one matmul computes them all. */
export function concatLinear(parts: LinearWeight[]): LinearWeight {
  const inFeatures = parts[0].inFeatures;
  if (parts.some((p) => p.inFeatures !== inFeatures)) throw new Error('concatLinear: input widths differ');
  const outFeatures = parts.reduce((n, p) => n + p.outFeatures, 0);
  const data = new Float32Array(outFeatures * inFeatures);
  let offset = 0;
  for (const p of parts) {
    data.set(p.data, offset);
    offset += p.data.length;
  }
  const hasBias = parts.some((p) => p.bias);
  const bias = hasBias ? new Float32Array(outFeatures) : undefined;
  if (bias) {
    let o = 0;
    for (const p of parts) {
      if (p.bias) bias.set(p.bias, o);
      o += p.outFeatures;
    }
  }
  return { data, outFeatures, inFeatures, bias };
}
