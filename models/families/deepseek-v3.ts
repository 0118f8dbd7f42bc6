// DeepSeek-V3 (model_type "deepseek_v3"): Multi-head Latent Attention (see deepseek-mla.ts)
// and the V3 MoEGate (topk_method "noaux_tc"), as in modeling_deepseek.py / transformers:
// - scores = sigmoid(router logits) in fp32; selection scores = scores + e_score_correction_bias
//   (a per-layer tensor gate.e_score_correction_bias [n_routed_experts]).
// - n_group groups; a group scores the SUM OF ITS TOP TWO selection scores; experts outside
//   the topk_group best groups get selection score 0.0 (Hugging Face's choice; DeepSeek's
//   own inference code and vLLM use -inf, which differs only when a biased score is negative).
// - top-k over the selection scores; the weights are the UNBIASED sigmoid scores of the chosen
//   experts, renormalised (w / (sum + 1e-20)) when norm_topk_prob, then ALWAYS multiplied by
//   routed_scaling_factor. Shared experts are added unscaled. transformers' DeepseekV3TopkRouter
//   renormalises for top_k = 1 too (a lone weight becomes 1); DeepSeek's remote code skips top_k = 1.
//   We follow transformers.
import { ConfigError } from '../errors.ts';
import { optionalBool, optionalEnum, optionalInt, optionalNumber, type JsonObject } from '../config-fields.ts';
import type { FamilyDefinition } from '../family.ts';
import type { ModelSpec, MoeMlpSpec } from '../spec.ts';
import { mlaExpertShape, mlaWeightNames, parseMlaModel } from './deepseek-mla.ts';

export const DEEPSEEK_V3_MODEL_TYPE = 'deepseek_v3';

function parseMoe(config: JsonObject, file: string): MoeMlpSpec | null {
  const numRouted = optionalInt(config, 'n_routed_experts', file, { min: 1 });
  if (numRouted === undefined) return null;
  optionalEnum(config, 'scoring_func', file, ['sigmoid'], 'sigmoid');
  optionalEnum(config, 'topk_method', file, ['noaux_tc'], 'noaux_tc');
  const shape = mlaExpertShape(config, file, numRouted);
  const numGroups = optionalInt(config, 'n_group', file, { min: 1 }) ?? 1;
  const topkGroups = optionalInt(config, 'topk_group', file, { min: 1, max: numGroups }) ?? numGroups;
  if (numRouted % numGroups !== 0) throw new ConfigError(file, 'n_group', `(${numGroups}) must divide n_routed_experts (${numRouted})`);
  if (topkGroups * (numRouted / numGroups) < shape.numExpertsPerToken) {
    throw new ConfigError(file, 'topk_group', `(${topkGroups}) groups hold fewer than num_experts_per_tok experts`);
  }
  return {
    kind: 'moe',
    ...shape,
    scoringFunc: 'sigmoid',
    normTopkProb: optionalBool(config, 'norm_topk_prob', file) ?? true,
    routedScalingFactor: optionalNumber(config, 'routed_scaling_factor', file, { above: 0 }) ?? 1,
    correctionBias: true,
    ...(numGroups > 1 ? { grouping: { numGroups, topkGroups, groupScore: 'top2-sum' as const } } : {}),
  };
}

function parseConfig(config: JsonObject, file: string): ModelSpec {
  const spec = parseMlaModel(config, file, DEEPSEEK_V3_MODEL_TYPE, { bosTokenId: 0, eosTokenId: 1 }, () => parseMoe(config, file));
  // The released checkpoint saves a multi-token-prediction layer after the decoder layers;
  // Hugging Face ignores it on load, and so does the engine.
  const mtp = optionalInt(config, 'num_nextn_predict_layers', file, { min: 0 }) ?? 0;
  return mtp > 0 ? { ...spec, unusedTrailingLayers: mtp } : spec;
}

export const deepseekV3: FamilyDefinition = { modelType: DEEPSEEK_V3_MODEL_TYPE, parseConfig, weightNames: mlaWeightNames };
