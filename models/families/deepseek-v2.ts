// DeepSeek-V2 / V2-Lite (model_type "deepseek_v2"): Multi-head Latent Attention (see
// deepseek-mla.ts) and the V2 MoEGate of modeling_deepseek.py:
// - scores = softmax(router logits) in fp32; topk_method "greedy": top-k over all experts;
//   "group_limited_greedy": experts split into n_group groups, a group scores the MAX of its
//   experts' scores, only the topk_group best groups' experts can be chosen (the others are
//   masked with 0.0, as the Hugging Face code does; softmax scores are positive, so this
//   equals masking with -inf).
// - Weights are the chosen scores. When top_k > 1 and norm_topk_prob they are renormalised
//   (w / (sum + 1e-20)) and NOT scaled; otherwise they are multiplied by
//   routed_scaling_factor. (V3 scales in both cases; this if/else is V2's.)
import { ConfigError } from '../errors.ts';
import { optionalBool, optionalEnum, optionalInt, optionalNumber, requireInt, type JsonObject } from '../config-fields.ts';
import type { FamilyDefinition } from '../family.ts';
import type { ModelSpec, MoeMlpSpec } from '../spec.ts';
import { mlaExpertShape, mlaWeightNames, parseMlaModel } from './deepseek-mla.ts';

export const DEEPSEEK_V2_MODEL_TYPE = 'deepseek_v2';

function parseMoe(config: JsonObject, file: string): MoeMlpSpec | null {
  const numRouted = optionalInt(config, 'n_routed_experts', file, { min: 1 });
  if (numRouted === undefined) return null;
  optionalEnum(config, 'scoring_func', file, ['softmax'], 'softmax');
  const method = optionalEnum(config, 'topk_method', file, ['greedy', 'group_limited_greedy'], 'greedy');
  const shape = mlaExpertShape(config, file, numRouted);
  const renormalise = (optionalBool(config, 'norm_topk_prob', file) ?? false) && shape.numExpertsPerToken > 1;
  const scaling = optionalNumber(config, 'routed_scaling_factor', file, { above: 0 }) ?? 1;
  const spec: MoeMlpSpec = {
    kind: 'moe',
    ...shape,
    scoringFunc: 'softmax',
    normTopkProb: renormalise,
    routedScalingFactor: renormalise ? 1 : scaling,
  };
  if (method === 'greedy') return spec;
  const numGroups = requireInt(config, 'n_group', file, { min: 1 });
  const topkGroups = requireInt(config, 'topk_group', file, { min: 1, max: numGroups });
  if (numRouted % numGroups !== 0) throw new ConfigError(file, 'n_group', `(${numGroups}) must divide n_routed_experts (${numRouted})`);
  if (topkGroups * (numRouted / numGroups) < shape.numExpertsPerToken) {
    throw new ConfigError(file, 'topk_group', `(${topkGroups}) groups hold fewer than num_experts_per_tok experts`);
  }
  return { ...spec, grouping: { numGroups, topkGroups, groupScore: 'max' } };
}

function parseConfig(config: JsonObject, file: string): ModelSpec {
  return parseMlaModel(config, file, DEEPSEEK_V2_MODEL_TYPE, { bosTokenId: 100000, eosTokenId: 100001 }, () => parseMoe(config, file));
}

export const deepseekV2: FamilyDefinition = { modelType: DEEPSEEK_V2_MODEL_TYPE, parseConfig, weightNames: mlaWeightNames };
