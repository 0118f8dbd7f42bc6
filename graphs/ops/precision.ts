// Activation precision inside a graph: the fused feed-forward blocks compute their experts in
// float16 on a GPU (half the bytes, the tensor cores), while their interface, the router and the
// residual stay float32. Half-precision values travel as their bit patterns (Uint16Array).
import { f32ToF16Bits } from '../../models/checkpoint/dtype.ts';
import { DataType, type GraphBuilder, MS_DOMAIN } from '../onnx/graph-builder.ts';
import { linear, type LinearWeight } from './linear.ts';
import { quantizeInt4 } from './quantize.ts';

export type ActivationType = 'float32' | 'float16';

/** Weights of a projection inside a device graph: in the activation type, or 4-bit blocks. */
export type DeviceWeights = 'float' | 'int4';

export function toHalf(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return out;
}

/** `values` as an initializer of `type`. */
export function floatInitializer(b: GraphBuilder, name: string, values: Float32Array, dims: number[], type: ActivationType): string {
  return b.initializer(name, type === 'float16' ? toHalf(values) : values, dims);
}

/** A scalar constant of `type`. */
export function scalar(b: GraphBuilder, value: number, type: ActivationType = 'float32'): string {
  return floatInitializer(b, 'c', Float32Array.of(value), [], type);
}

/** x cast to `to` (no node when it already has that type). */
export function castTo(b: GraphBuilder, x: string, from: ActivationType, to: ActivationType): string {
  return from === to ? x : b.op('Cast', [x], { to: to === 'float16' ? DataType.FLOAT16 : DataType.FLOAT });
}

export interface DeviceLinearOptions {
  weights: DeviceWeights;
  /** The type of x and of the result. */
  activations: ActivationType;
  /** MatMulNBits accuracy_level (CPU only; CUDA ignores it). */
  int4AccuracyLevel?: number;
}

/**
 * y = x W^T (+ b) with x in the activation type: fp32 activations reuse linear(); fp16 ones use
 * a half-precision Gemm or MatMulNBits with half scales (both have CUDA kernels for fp16).
 */
export function deviceLinear(b: GraphBuilder, x: string, w: LinearWeight, name: string, opts: DeviceLinearOptions): string {
  if (opts.activations === 'float32') {
    return linear(b, x, w, name, { precision: opts.weights === 'int4' ? 'int4' : 'fp32', int4AccuracyLevel: opts.int4AccuracyLevel });
  }
  let y: string;
  if (opts.weights === 'int4' && w.inFeatures % 32 === 0) {
    const q = quantizeInt4(w.data, w.outFeatures, w.inFeatures);
    const numBlocks = w.inFeatures / q.blockSize;
    const packed = b.initializer(`${name}_q4`, q.packed, [w.outFeatures, numBlocks, q.blockSize / 2]);
    const scales = b.initializer(`${name}_scales`, toHalf(q.scales), [w.outFeatures * numBlocks]);
    const attrs = { K: w.inFeatures, N: w.outFeatures, bits: 4, block_size: q.blockSize, accuracy_level: opts.int4AccuracyLevel ?? 0 };
    y = b.op('MatMulNBits', [x, packed, scales], attrs, MS_DOMAIN);
  } else {
    y = b.op('Gemm', [x, b.initializer(`${name}_w`, toHalf(w.data), [w.outFeatures, w.inFeatures])], { transB: 1 });
  }
  return w.bias ? b.op('Add', [y, b.initializer(`${name}_b`, toHalf(w.bias), [w.outFeatures])]) : y;
}
