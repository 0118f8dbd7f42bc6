// A MoE layer's routing as /v1/models describes it to clients. (runtime/moe/router-config.ts
// turns the same spec into the router's configuration.)
import type { MoeMlpSpec } from './spec.ts';

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
    groups: mlp.grouping
      ? { num_groups: mlp.grouping.numGroups, topk_groups: mlp.grouping.topkGroups, group_score: mlp.grouping.groupScore }
      : null,
    shared_expert_intermediate_size: mlp.sharedIntermediateSize,
    shared_expert_gate: mlp.sharedExpertGate === true,
  };
}
