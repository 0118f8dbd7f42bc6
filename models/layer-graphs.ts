// The ONNX graphs one decoder model is cut into. Cuts sit where the engine must step in:
// around attention (the KV cache is engine memory, attention runs per sequence) and around
// the routed experts (gating and dispatch happen in TypeScript). Everything between two cuts
// is one graph, so a decode step costs few session calls per layer:
//   attn-in   : RMSNorm -> fused q/k/v projection -> RoPE             (all tokens of the step)
//   attn-core : softmax attention over cached keys/values             (one call per sequence)
//   attn-out  : o_proj + residual -> RMSNorm -> dense MLP, or shared experts + router logits
//   expert j  : one routed SwiGLU expert over the rows routed to it
//   lm-head   : final RMSNorm -> vocabulary projection                 (rows that need logits)
import type { GraphBuilder } from '../kernels/onnx/graph-builder.ts';
import { linear, type LinearOptions, type LinearWeight, concatLinear } from '../kernels/ops/linear.ts';
import { rmsNorm } from '../kernels/ops/norm.ts';
import { applyRope } from '../kernels/ops/rope.ts';
import { swiglu, type SwigluWeights } from '../kernels/ops/swiglu.ts';
import type { LayerWeightNames, SwigluWeightNames } from './family.ts';
import { isMoe, type ModelSpec } from './spec.ts';

/** Reads one checkpoint tensor as f32, checking its shape. */
export type ReadWeight = (name: string, shape: number[]) => Float32Array;

function readLinear(read: ReadWeight, name: string, outFeatures: number, inFeatures: number, biasName?: string): LinearWeight {
  const data = read(name, [outFeatures, inFeatures]);
  const bias = biasName ? read(biasName, [outFeatures]) : undefined;
  return { data, outFeatures, inFeatures, bias };
}

export function readSwiglu(read: ReadWeight, names: SwigluWeightNames, hidden: number, width: number): SwigluWeights {
  return {
    gate: readLinear(read, names.gate, width, hidden),
    up: readLinear(read, names.up, width, hidden),
    down: readLinear(read, names.down, hidden, width),
  };
}

export function buildAttentionIn(b: GraphBuilder, spec: ModelSpec, names: LayerWeightNames, read: ReadWeight, opts: LinearOptions): void {
  const { hiddenSize: h, numHeads, numKvHeads, headDim } = spec;
  const hidden = b.input('hidden', 'float32', ['T', h]);
  const cos = b.input('cos', 'float32', ['T', headDim / 2]);
  const sin = b.input('sin', 'float32', ['T', headDim / 2]);
  const x = rmsNorm(b, hidden, read(names.inputNorm, [h]), spec.rmsNormEps, 'input_norm');
  const a = names.attention;
  const qkv = concatLinear([
    readLinear(read, a.q, numHeads * headDim, h, a.qBias),
    readLinear(read, a.k, numKvHeads * headDim, h, a.kBias),
    readLinear(read, a.v, numKvHeads * headDim, h, a.vBias),
  ]);
  const projected = linear(b, x, qkv, 'qkv', opts);
  const widths = [numHeads * headDim, numKvHeads * headDim, numKvHeads * headDim];
  const [q, k, v] = b.node('Split', [projected, b.constInt64(widths)], 3, { axis: -1 });
  const cos3 = b.op('Unsqueeze', [cos, b.constInt64([1])]);
  const sin3 = b.op('Unsqueeze', [sin, b.constInt64([1])]);
  const heads = (value: string, n: number) => b.op('Reshape', [value, b.constInt64([0, n, headDim])]);
  b.output(applyRope(b, heads(q, numHeads), cos3, sin3, headDim), 'q', 'float32', ['T', numHeads, headDim]);
  b.output(applyRope(b, heads(k, numKvHeads), cos3, sin3, headDim), 'k', 'float32', ['T', numKvHeads, headDim]);
  b.output(heads(v, numKvHeads), 'v', 'float32', ['T', numKvHeads, headDim]);
}

export function buildAttentionOut(
  b: GraphBuilder,
  spec: ModelSpec,
  layer: number,
  names: LayerWeightNames,
  read: ReadWeight,
  opts: LinearOptions,
): void {
  const { hiddenSize: h, numHeads, headDim } = spec;
  const attn = b.input('attn', 'float32', ['T', numHeads * headDim]);
  const hidden = b.input('hidden', 'float32', ['T', h]);
  const o = readLinear(read, names.attention.o, h, numHeads * headDim);
  const residual = b.op('Add', [hidden, linear(b, attn, o, 'o_proj', opts)]);
  const x = rmsNorm(b, residual, read(names.postAttentionNorm, [h]), spec.rmsNormEps, 'post_norm');
  const mlp = spec.mlp[layer];
  const mlpNames = names.mlp;
  if (!isMoe(mlp) || mlpNames.kind !== 'moe') {
    if (mlpNames.kind !== 'dense' || isMoe(mlp)) throw new Error(`layer ${layer}: spec and weight names disagree`);
    const dense = swiglu(b, x, readSwiglu(read, mlpNames.mlp, h, mlp.intermediateSize), 'mlp', opts);
    b.output(b.op('Add', [residual, dense]), 'hidden_out', 'float32', ['T', h]);
    return;
  }
  const withShared = mlpNames.shared
    ? b.op('Add', [residual, swiglu(b, x, readSwiglu(read, mlpNames.shared, h, mlp.sharedIntermediateSize), 'shared', opts)])
    : residual;
  // The router stays fp32 whatever the weight precision: expert choice must not drift.
  const router = readLinear(read, mlpNames.router, mlp.numRoutedExperts, h);
  const logits = linear(b, x, router, 'router', { precision: 'fp32' });
  b.output(withShared, 'hidden_out', 'float32', ['T', h]);
  b.output(x, 'moe_in', 'float32', ['T', h]);
  b.output(logits, 'router_logits', 'float32', ['T', mlp.numRoutedExperts]);
}

export function buildExpert(b: GraphBuilder, spec: ModelSpec, weights: SwigluWeights, opts: LinearOptions): void {
  const x = b.input('x', 'float32', ['M', spec.hiddenSize]);
  b.output(swiglu(b, x, weights, 'expert', opts), 'y', 'float32', ['M', spec.hiddenSize]);
}

export function buildLmHead(b: GraphBuilder, spec: ModelSpec, normName: string, headName: string, read: ReadWeight, opts: LinearOptions): void {
  const { hiddenSize: h, vocabSize } = spec;
  const hidden = b.input('hidden', 'float32', ['R', h]);
  const x = rmsNorm(b, hidden, read(normName, [h]), spec.rmsNormEps, 'final_norm');
  const logits = linear(b, x, readLinear(read, headName, vocabSize, h), 'lm_head', opts);
  b.output(logits, 'logits', 'float32', ['R', vocabSize]);
}
