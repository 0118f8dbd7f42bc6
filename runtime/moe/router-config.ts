// A MoE layer's spec -> the router's configuration. Every family's gate is a configuration of
// the same pieces in router.ts (score, correction bias, group limit, top-k, renormalise,
// scale); the shared-expert gate (Qwen2-MoE) lives in the shared expert's graph. Nothing
// here is family-specific: the family parsers set the spec.
import type { MoeMlpSpec } from '../../models/spec.ts';
import type { GatingConfig } from './router.ts';

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
