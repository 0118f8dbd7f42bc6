// A MoE layer's gating as ONNX nodes, so a whole MoE block runs as one graph call. The math is
// runtime/moe/router.ts step for step (see reference/moe-routing.md): score (softmax | sigmoid)
// -> selection scores (+ correction bias) -> group mask -> top-k -> weights from the unbiased
// scores -> renormalise -> scale. Router logits arrive in float32 and every step stays float32:
// expert choice must not drift with the experts' precision.
//
// Only ops with CUDA kernels and no shape arithmetic are used: a node that computes a shape
// would be placed on the CPU by the CUDA provider, which a session with CPU fallback disabled
// refuses. Masks are built by comparing index tensors with constant ranges (Equal), not by
// scattering into a tensor shaped at run time.
import type { MoeMlpSpec } from '../../models/spec.ts';
import { DataType, type GraphBuilder } from '../onnx/graph-builder.ts';
import { scalar } from './precision.ts';

/** The router's configuration (structurally runtime/moe/router.ts GatingConfig, which satisfies it). */
export interface GraphGating {
  numExperts: number;
  topK: number;
  scoringFunc: 'softmax' | 'sigmoid';
  normTopkProb: boolean;
  renormalizeOnlyIfTopkGt1?: boolean;
  routedScalingFactor: number;
  correctionBias?: Float32Array;
  numGroups?: number;
  topkGroups?: number;
  groupScore?: 'max' | 'top2-sum';
  maskedGroupScore?: number;
}

/** Added to the renormalisation denominator, as router.ts (and the DeepSeek references) do. */
const RENORM_EPSILON = 1e-20;

/**
 * The gating of a MoE layer's spec, as runtime/moe/router-config.ts gatingConfigFor makes it
 * (a test keeps the two equal): dropped groups are masked with 0.0 as Hugging Face does.
 */
export function gatingFromSpec(mlp: MoeMlpSpec, correctionBias?: Float32Array): GraphGating {
  return {
    numExperts: mlp.numRoutedExperts,
    topK: mlp.numExpertsPerToken,
    scoringFunc: mlp.scoringFunc,
    normTopkProb: mlp.normTopkProb,
    routedScalingFactor: mlp.routedScalingFactor,
    ...(correctionBias ? { correctionBias } : {}),
    ...(mlp.grouping
      ? { numGroups: mlp.grouping.numGroups, topkGroups: mlp.grouping.topkGroups, groupScore: mlp.grouping.groupScore, maskedGroupScore: 0 }
      : {}),
  };
}

/** Chosen experts and their final weights, token-major. */
export interface GraphRouting {
  /** int64 [T, k], descending selection score. */
  ids: string;
  /** float32 [T, k]: renormalised and scaled as the family asks. */
  weights: string;
}

/** logits float32 [T, E] -> the routing of every row. */
export function gateTokens(b: GraphBuilder, logits: string, g: GraphGating): GraphRouting {
  const scores = g.scoringFunc === 'softmax' ? b.op('Softmax', [logits], { axis: -1 }) : b.op('Sigmoid', [logits]);
  let selection = g.correctionBias ? b.op('Add', [scores, b.initializer('correction_bias', g.correctionBias, [g.numExperts])]) : scores;
  if ((g.numGroups ?? 1) > 1) selection = maskGroups(b, selection, g);
  const [, ids] = b.node('TopK', [selection, b.constInt64([g.topK])], 2, { axis: -1, largest: 1, sorted: 1 });
  let weights = b.op('GatherElements', [scores, ids], { axis: -1 });
  if (g.normTopkProb && (g.topK > 1 || g.renormalizeOnlyIfTopkGt1 !== true)) {
    const sum = b.op('ReduceSum', [weights, b.constInt64([-1])], { keepdims: 1 });
    weights = b.op('Div', [weights, b.op('Add', [sum, scalar(b, RENORM_EPSILON)])]);
  }
  if (g.routedScalingFactor !== 1) weights = b.op('Mul', [weights, scalar(b, g.routedScalingFactor)]);
  return { ids, weights };
}

/**
 * Keeps the topkGroups best of numGroups equal groups (ties: lower group first, as TopK and
 * router.ts both order them) and gives every expert of the other groups maskedGroupScore.
 */
function maskGroups(b: GraphBuilder, selection: string, g: GraphGating): string {
  const numGroups = g.numGroups ?? 1;
  const topkGroups = g.topkGroups ?? numGroups;
  const groupSize = g.numExperts / numGroups;
  const grouped = b.op('Reshape', [selection, b.constInt64([-1, numGroups, groupSize])]);
  let groupScores: string;
  if (g.groupScore === 'top2-sum' && groupSize > 1) {
    const [top2] = b.node('TopK', [grouped, b.constInt64([2])], 2, { axis: 2, largest: 1, sorted: 1 });
    groupScores = b.op('ReduceSum', [top2, b.constInt64([2])], { keepdims: 0 });
  } else {
    // A one-expert group's "top two" is that expert alone (router.ts).
    groupScores = b.op('ReduceMax', [grouped, b.constInt64([2])], { keepdims: 0 });
  }
  const [, keptGroups] = b.node('TopK', [groupScores, b.constInt64([topkGroups])], 2, { axis: -1, largest: 1, sorted: 1 });
  const kept = membership(b, keptGroups, numGroups); // bool [T, G]
  const fill = scalar(b, g.maskedGroupScore ?? -Infinity);
  const masked = b.op('Where', [b.op('Unsqueeze', [kept, b.constInt64([-1])]), grouped, fill]);
  return b.op('Reshape', [masked, b.constInt64([-1, g.numExperts])]);
}

/** bool [T, n]: whether each of 0..n-1 is among the int64 indices [T, m] of its row. */
export function membership(b: GraphBuilder, indices: string, n: number): string {
  const range = b.constInt64(Array.from({ length: n }, (_, i) => i));
  const hits = b.op('Cast', [b.op('Equal', [b.op('Unsqueeze', [indices, b.constInt64([-1])]), range])], { to: DataType.FLOAT }); // [T, m, n]
  return b.op('Greater', [b.op('ReduceMax', [hits, b.constInt64([1])], { keepdims: 0 }), scalar(b, 0.5)]);
}

/** What the MoE / QMoE op needs to apply a routing decided outside it. */
export interface EncodedRouting {
  /** float32 [T, E]: log(w / max w) at the chosen experts (floored at -60), -1e4 elsewhere. */
  routerProbs: string;
  /** float32 [T, 1]: sum of the chosen weights, to multiply the op's output by. */
  scale: string;
}

/** Lowest relative log-weight kept: e^-60 is far below float16 resolution, and stays above UNCHOSEN. */
const LOG_WEIGHT_FLOOR = -60;
/** Router input of the experts not chosen: exp(-1e4) is 0 in float16 and float32 alike. */
const UNCHOSEN = -1e4;

/**
 * The CUDA MoE kernels route by softmax over router_probs, top-k, optional renormalisation,
 * and ignore any routing given otherwise. Feeding log-weights at the chosen experts and -1e4
 * elsewhere, with normalize_routing_weights=1, makes that softmax + top-k pick exactly our
 * experts with weights w_j / sum(w); multiplying the op's output by sum(w) restores the
 * family's weights (renormalised or not, scaled or not). Subtracting the largest log-weight
 * first keeps the values near 0, where float16 holds them finely.
 */
export function encodeRouting(b: GraphBuilder, routing: GraphRouting, numExperts: number): EncodedRouting {
  const { ids, weights } = routing;
  const largest = b.op('ReduceMax', [weights, b.constInt64([-1])], { keepdims: 1 });
  const relative = b.op('Max', [b.op('Log', [b.op('Div', [weights, largest])]), scalar(b, LOG_WEIGHT_FLOOR)]); // [T, k]
  const range = b.constInt64(Array.from({ length: numExperts }, (_, i) => i));
  const chosen = b.op('Equal', [b.op('Unsqueeze', [ids, b.constInt64([-1])]), range]); // [T, k, E]
  const spread = b.op('Where', [chosen, b.op('Unsqueeze', [relative, b.constInt64([-1])]), scalar(b, UNCHOSEN)]);
  return {
    routerProbs: b.op('ReduceMax', [spread, b.constInt64([1])], { keepdims: 0 }),
    scale: b.op('ReduceSum', [weights, b.constInt64([-1])], { keepdims: 1 }),
  };
}
