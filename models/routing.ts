// A MoE layer's routing as the gating kernel runs it and as /v1/models describes it. Every
// family's gate is a configuration of the same pieces in kernels/gating.ts (score, correction
// bias, group limit, top-k, renormalise, scale); the shared-expert gate (Qwen2-MoE) lives in
// the shared expert's graph. Nothing here is family-specific: the family parsers set the spec.
import type { GatingConfig } from '../kernels/gating.ts';
import type { MoeMlpSpec } from './spec.ts';

/** The gating configuration of one MoE layer; `correctionBias` is the layer's tensor (V3). */
export function gatingConfigFor(mlp: MoeMlpSpec, correctionBias?: Float32Array): GatingConfig {
  if (mlp.correctionBias === true && correctionBias === undefined) throw new Error('this MoE layer needs its e_score_correction_bias');
  return {
    numExperts: mlp.numRoutedExperts,
    topK: mlp.numExpertsPerToken,
    scoringFunc: mlp.scoringFunc,
    normTopkProb: mlp.normTopkProb,
    routedScalingFactor: mlp.routedScalingFactor,
    ...(correctionBias ? { correctionBias } : {}),
    ...(mlp.grouping
      ? {
          numGroups: mlp.grouping.numGroups,
          topkGroups: mlp.grouping.topkGroups,
          groupScore: mlp.grouping.groupScore,
          // Hugging Face masks dropped groups with 0.0 (see deepseek-v2.ts / deepseek-v3.ts).
          maskedGroupScore: 0,
        }
      : {}),
  };
}

/** A JSON description of a MoE layer's routing, for clients (GET /v1/models). */
export interface RoutingDescription {
  scoring: 'softmax' | 'sigmoid';
  top_k: number;
  num_routed_experts: number;
  renormalize: boolean;
  routed_scaling_factor: number;
  correction_bias: boolean;
  groups: { num_groups: number; topk_groups: number; group_score: 'max' | 'top2-sum' } | null;
  shared_expert_intermediate_size: number;
  shared_expert_gate: boolean;
}

export function describeRouting(mlp: MoeMlpSpec): RoutingDescription {
  return {
    scoring: mlp.scoringFunc,
    top_k: mlp.numExpertsPerToken,
    num_routed_experts: mlp.numRoutedExperts,
    renormalize: mlp.normTopkProb,
    routed_scaling_factor: mlp.routedScalingFactor,
    correction_bias: mlp.correctionBias === true,
    groups: mlp.grouping ? { num_groups: mlp.grouping.numGroups, topk_groups: mlp.grouping.topkGroups, group_score: mlp.grouping.groupScore } : null,
    shared_expert_intermediate_size: mlp.sharedIntermediateSize,
    shared_expert_gate: mlp.sharedExpertGate === true,
  };
}
