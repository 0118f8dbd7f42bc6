// The fused feed-forward block of one decoder layer: one graph call per layer where the
// per-expert plan (layer-graphs.ts) makes a call for mlp-in and one per chosen expert. Built for
// a GPU, where onnxruntime-node copies every input and output through host memory on every call
// and the call count, not the bytes, sets the speed (reference/gpu-facts.md):
//   hidden, attn -> + o_proj(attn) (MLA: W_UV then o_proj) -> post-attention RMSNorm
//     dense layer: the SwiGLU MLP
//     MoE layer  : router (fp32) -> the family's gating (ops/gating.ts) -> routed experts in one
//                  MoE / QMoE node (ops/routed-experts.ts) -> shared experts (Qwen2-MoE's gate)
//   -> + residual: hidden_out, and the routing (expert_ids, expert_weights) for the engine.
// The interface, the router, the gating and the residual stay float32; the experts and the
// shared/dense MLP compute in `activations` (float16 on a GPU).
import type { GraphBuilder } from './onnx/graph-builder.ts';
import { linear, type LinearOptions } from './ops/linear.ts';
import { rmsNorm } from './ops/norm.ts';
import { encodeRouting, gateTokens, type GraphGating } from './ops/gating.ts';
import { type ActivationType, castTo, deviceLinear, type DeviceLinearOptions, type DeviceWeights } from './ops/precision.ts';
import { packExperts, routedExperts, type RoutedExpertWeights } from './ops/routed-experts.ts';
import { concatLinear, type LinearWeight } from './ops/linear.ts';
import type { SwigluWeights } from './ops/swiglu.ts';
import { mlaOutProjection } from './mla-graphs.ts';
import { readLinear, readSwiglu, type ReadWeight } from './read-weights.ts';
import { isMlaNames, type LayerWeightNames, type MlpWeightNames } from '../models/family.ts';
import { isMoe, type MoeMlpSpec, type ModelSpec } from '../models/spec.ts';

type MoeWeightNames = Extract<MlpWeightNames, { kind: 'moe' }>;

export interface BlockPrecision {
  /** Type the experts and the shared / dense MLP compute in. */
  activations: ActivationType;
  /** Routed experts: MoE with weights in the activation type, or QMoE with 4-bit blocks. */
  experts: RoutedExpertWeights;
  /** o_proj, shared experts, dense MLP: weights in the activation type (o_proj: float32), or MatMulNBits. */
  projections: DeviceWeights;
  /** MatMulNBits accuracy_level on the CPU (4: int8 activations, fast; 0: exact). CUDA ignores it. */
  int4AccuracyLevel?: number;
}

/** Width of the attention output a layer's block takes: heads x head dim, or heads x latent rank (MLA). */
export function attentionWidth(spec: ModelSpec): number {
  return spec.mla ? spec.numHeads * spec.mla.kvLoraRank : spec.numHeads * spec.headDim;
}

/**
 * Inputs hidden [T, h] (the residual before attention) and attn [T, attentionWidth]; outputs
 * hidden_out [T, h], and for MoE layers expert_ids int64 [T, k] and expert_weights [T, k].
 */
export function buildFeedForwardBlock(
  b: GraphBuilder,
  spec: ModelSpec,
  layer: number,
  names: LayerWeightNames,
  read: ReadWeight,
  precision: BlockPrecision,
  gating: GraphGating | null,
): void {
  const h = spec.hiddenSize;
  const hidden = b.input('hidden', 'float32', ['T', h]);
  const attn = b.input('attn', 'float32', ['T', attentionWidth(spec)]);
  const residual = b.op('Add', [hidden, outProjection(b, spec, names, read, precision, attn)]);
  const x = rmsNorm(b, residual, read(names.postAttentionNorm, [h]), spec.rmsNormEps, 'post_norm');
  const ctx: BlockContext = { b, spec, read, precision, x };
  const mlp = spec.mlp[layer];
  const mlpNames = names.mlp;
  let parts: string[];
  if (mlpNames.kind === 'dense' && !isMoe(mlp)) {
    parts = [swigluOf(ctx, ctx.x, readSwiglu(read, mlpNames.mlp, h, mlp.intermediateSize), 'mlp')];
  } else if (mlpNames.kind === 'moe' && isMoe(mlp)) {
    if (!gating) throw new Error(`layer ${layer}: a MoE block needs its gating`);
    parts = moeParts(ctx, mlp, mlpNames, gating);
  } else {
    throw new Error(`layer ${layer}: spec and weight names disagree`);
  }
  b.output(
    [residual, ...parts].reduce((sum, part) => b.op('Add', [sum, part])),
    'hidden_out',
    'float32',
    ['T', h],
  );
}

/** What the block's parts share: the builder, the model, its weights and the normalised rows x. */
interface BlockContext {
  b: GraphBuilder;
  spec: ModelSpec;
  read: ReadWeight;
  precision: BlockPrecision;
  /** Post-attention RMSNorm of the residual, float32 [T, h]. */
  x: string;
}

/**
 * A MoE layer's float32 contributions: the routed experts (one node) scaled back to the
 * family's weights, and the shared experts (Qwen2-MoE: times their sigmoid gate). Also marks
 * the routing as the outputs expert_ids and expert_weights.
 */
function moeParts(ctx: BlockContext, mlp: MoeMlpSpec, names: MoeWeightNames, gating: GraphGating): string[] {
  const { b, read, precision, x } = ctx;
  const h = ctx.spec.hiddenSize;
  const act = precision.activations;
  // The router stays fp32 whatever the weight precision: expert choice must not drift.
  const logits = linear(b, x, readLinear(read, names.router, mlp.numRoutedExperts, h), 'router', { precision: 'fp32' });
  const routing = gateTokens(b, logits, gating);
  const encoded = encodeRouting(b, routing, mlp.numRoutedExperts);
  const shape = {
    numExperts: mlp.numRoutedExperts,
    hiddenSize: h,
    intermediateSize: mlp.expertIntermediateSize,
    topK: mlp.numExpertsPerToken,
  };
  const packed = packExperts((j) => readSwiglu(read, names.experts[j], h, mlp.expertIntermediateSize), shape, precision.experts);
  const probs = castTo(b, encoded.routerProbs, 'float32', act);
  const routed = routedExperts(b, castTo(b, x, 'float32', act), probs, packed, shape, precision.experts, act);
  const parts = [b.op('Mul', [castTo(b, routed, act, 'float32'), encoded.scale])];
  if (names.shared) {
    const shared = swigluOf(ctx, x, readSwiglu(read, names.shared, h, mlp.sharedIntermediateSize), 'shared');
    if (names.sharedGate === undefined) parts.push(shared);
    else {
      const gate: LinearWeight = { data: read(names.sharedGate, [1, h]), outFeatures: 1, inFeatures: h };
      parts.push(b.op('Mul', [shared, b.op('Sigmoid', [linear(b, x, gate, 'shared_gate', { precision: 'fp32' })])]));
    }
  }
  b.output(routing.ids, 'expert_ids', 'int64', ['T', mlp.numExpertsPerToken]);
  b.output(routing.weights, 'expert_weights', 'float32', ['T', mlp.numExpertsPerToken]);
  return parts;
}

/** A SwiGLU MLP of float32 rows x, computed in the activation type, back in float32. */
function swigluOf(ctx: BlockContext, x: string, w: SwigluWeights, name: string): string {
  const { b, precision } = ctx;
  const act = precision.activations;
  const opts: DeviceLinearOptions = { weights: precision.projections, activations: act, int4AccuracyLevel: precision.int4AccuracyLevel };
  return castTo(b, deviceSwiglu(b, castTo(b, x, 'float32', act), w, name, opts), act, 'float32');
}

/** o_proj of the attention output (float32 activations; weights 4-bit or float32). */
function outProjection(
  b: GraphBuilder,
  spec: ModelSpec,
  names: LayerWeightNames,
  read: ReadWeight,
  precision: BlockPrecision,
  attn: string,
): string {
  const opts: LinearOptions = {
    precision: precision.projections === 'int4' ? 'int4' : 'fp32',
    int4AccuracyLevel: precision.int4AccuracyLevel,
  };
  const a = names.attention;
  if (isMlaNames(a)) return mlaOutProjection(b, spec, a, read, opts, attn);
  return linear(b, attn, readLinear(read, a.o, spec.hiddenSize, spec.numHeads * spec.headDim), 'o_proj', opts);
}

/** down(silu(gate x) * up x) with x and the result in the activation type. */
function deviceSwiglu(b: GraphBuilder, x: string, w: SwigluWeights, name: string, opts: DeviceLinearOptions): string {
  const width = w.gate.outFeatures;
  const gateUp = deviceLinear(b, x, concatLinear([w.gate, w.up]), `${name}_gate_up`, opts);
  const [gate, up] = b.node('Split', [gateUp, b.constInt64([width, width])], 2, { axis: -1 });
  const silu = b.op('Mul', [gate, b.op('Sigmoid', [gate])]);
  return deviceLinear(b, b.op('Mul', [silu, up]), w.down, `${name}_down`, opts);
}
