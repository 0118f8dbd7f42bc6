// All of a MoE layer's routed experts in one node: com.microsoft.MoE (weights in the activation
// type) or com.microsoft.QMoE (4-bit weights in blocks along K). Both take the SwiGLU experts
// as fc1 = gate and up projections fused (interleaved rows: gate_0, up_0, gate_1, up_1, ...)
// and fc2 = down, in the Hugging Face [out, in] layout:
//   - CPU MoE and QMoE accept SwiGLU only with swiglu_fusion=1 (interleaved) and no fc3;
//   - CUDA QMoE has no fc3 either (gate and up must be fused in fc1);
// so swiglu_fusion=1 without fc3 is the one formulation both providers run. The ops' SwiGLU is
// G * sigmoid(alpha * G) * (L + beta) with an optional clamp: alpha = 1, beta = 0 and no limit
// is the families' silu(gate) * up.
import { type GraphBuilder, MS_DOMAIN } from '../onnx/graph-builder.ts';
import { type ActivationType, floatInitializer, toHalf } from './precision.ts';
import { quantizeInt4 } from './quantize.ts';
import type { SwigluWeights } from './swiglu.ts';

export type RoutedExpertWeights = { kind: 'float' } | { kind: 'int4'; blockSize: number };

export interface RoutedExpertsShape {
  numExperts: number;
  hiddenSize: number;
  intermediateSize: number;
  topK: number;
}

/** One layer's experts in the ops' layouts (float32 values for 'float'; packed nibbles + scales for 'int4'). */
export interface PackedExperts {
  fc1: Float32Array | Uint8Array;
  fc2: Float32Array | Uint8Array;
  fc1Scales?: Float32Array;
  fc2Scales?: Float32Array;
}

/** Gate and up rows interleaved: [2 * I, H]. */
export function interleaveGateUp(w: SwigluWeights): Float32Array {
  const { outFeatures: inter, inFeatures: hidden } = w.gate;
  const out = new Float32Array(2 * inter * hidden);
  for (let i = 0; i < inter; i++) {
    out.set(w.gate.data.subarray(i * hidden, (i + 1) * hidden), 2 * i * hidden);
    out.set(w.up.data.subarray(i * hidden, (i + 1) * hidden), (2 * i + 1) * hidden);
  }
  return out;
}

/**
 * Reads the experts one at a time (`readExpert(j)`) into the op layout, so at most one
 * expert's float weights are held beside the packed layer.
 */
export function packExperts(
  readExpert: (j: number) => SwigluWeights,
  shape: RoutedExpertsShape,
  weights: RoutedExpertWeights,
): PackedExperts {
  const { numExperts: e, hiddenSize: h, intermediateSize: inter } = shape;
  if (weights.kind === 'float') {
    const fc1 = new Float32Array(e * 2 * inter * h);
    const fc2 = new Float32Array(e * h * inter);
    for (let j = 0; j < e; j++) {
      const w = readExpert(j);
      fc1.set(interleaveGateUp(w), j * 2 * inter * h);
      fc2.set(w.down.data, j * h * inter);
    }
    return { fc1, fc2 };
  }
  const { blockSize } = weights;
  const fc1 = new Uint8Array((e * 2 * inter * h) / 2);
  const fc2 = new Uint8Array((e * h * inter) / 2);
  const fc1Scales = new Float32Array((e * 2 * inter * h) / blockSize);
  const fc2Scales = new Float32Array((e * h * inter) / blockSize);
  for (let j = 0; j < e; j++) {
    const w = readExpert(j);
    const up = quantizeInt4(interleaveGateUp(w), 2 * inter, h, blockSize);
    const down = quantizeInt4(w.down.data, h, inter, blockSize);
    fc1.set(up.packed, j * up.packed.length);
    fc1Scales.set(up.scales, j * up.scales.length);
    fc2.set(down.packed, j * down.packed.length);
    fc2Scales.set(down.scales, j * down.scales.length);
  }
  return { fc1, fc2, fc1Scales, fc2Scales };
}

/**
 * The routed experts' weighted sum for x [T, H] in `type`; routerProbs [T, E] in `type` are
 * the encoded routing of gating.ts (the op renormalises what it picks: normalize_routing_weights=1).
 */
export function routedExperts(
  b: GraphBuilder,
  x: string,
  routerProbs: string,
  packed: PackedExperts,
  shape: RoutedExpertsShape,
  weights: RoutedExpertWeights,
  type: ActivationType,
): string {
  const { numExperts: e, hiddenSize: h, intermediateSize: inter } = shape;
  const attrs = {
    k: shape.topK,
    normalize_routing_weights: 1,
    use_sparse_mixer: 0,
    activation_type: 'swiglu',
    swiglu_fusion: 1,
    activation_alpha: { float: 1 },
    activation_beta: { float: 0 },
  };
  if (weights.kind === 'float') {
    if (!(packed.fc1 instanceof Float32Array) || !(packed.fc2 instanceof Float32Array)) throw new Error('float experts need float weights');
    const fc1 = floatInitializer(b, 'fc1', packed.fc1, [e, 2 * inter, h], type);
    const fc2 = floatInitializer(b, 'fc2', packed.fc2, [e, h, inter], type);
    return b.op('MoE', [x, routerProbs, fc1, '', fc2], attrs, MS_DOMAIN);
  }
  const { fc1, fc2, fc1Scales, fc2Scales } = packed;
  if (!(fc1 instanceof Uint8Array) || !(fc2 instanceof Uint8Array) || !fc1Scales || !fc2Scales)
    throw new Error('int4 experts need packed weights');
  const { blockSize } = weights;
  const scales = (values: Float32Array, dims: number[]) => b.initializer('scales', type === 'float16' ? toHalf(values) : values, dims);
  const inputs = [
    x,
    routerProbs,
    b.initializer('fc1_q4', fc1, [e, 2 * inter, h / 2]),
    scales(fc1Scales, [e, 2 * inter, h / blockSize]),
    '',
    b.initializer('fc2_q4', fc2, [e, h, inter / 2]),
    scales(fc2Scales, [e, h, inter / blockSize]),
  ];
  // weights_prepacked=0: raw [E, N, K/2] nibbles as MatMulNBits lays them out (CUDA repacks them
  // for its kernels when the session loads; its default assumes they already are).
  const qAttrs = { ...attrs, expert_weight_bits: 4, block_size: blockSize, weights_prepacked: 0 };
  return b.op('QMoE', inputs, qAttrs, MS_DOMAIN);
}
