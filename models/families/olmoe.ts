// OLMoE (model_type "olmoe", e.g. allenai/OLMoE-1B-7B-0924), as Hugging Face transformers
// defines it (configuration_olmoe.py, modeling_olmoe.py).
// - Every layer is MoE: num_experts experts of intermediate_size (there is no
//   moe_intermediate_size key), no shared expert.
// - Router: softmax in fp32, top-k, renormalised (no epsilon) only when norm_topk_prob
//   (false in the release).
// - Attention: q_norm and k_norm are RMSNorms over the WHOLE projection (q: hidden_size
//   values, k: kv_heads * head_dim), not per head as in Qwen3-MoE, applied before the heads
//   are split and rotated. clip_qkv (null in the release) would clamp q/k/v; not supported.
import { ConfigError } from '../errors.ts';
import { optionalBool, optionalNumber, requireInt, type JsonObject } from '../config-fields.ts';
import type { FamilyDefinition, MlpWeightNames, ModelWeightNames } from '../family.ts';
import type { MlpSpec, ModelSpec } from '../spec.ts';
import { checkModelType, decoderLayerNames, parseCommon, routedExpertNames, softmaxMoe, topLevelNames } from './common.ts';

export const OLMOE_MODEL_TYPE = 'olmoe';

const DEFAULTS = { ropeTheta: 10000, rmsNormEps: 1e-5, maxPositions: 4096, bosTokenId: null, eosTokenId: 50279, tieWordEmbeddings: false };

function parseConfig(config: JsonObject, file: string): ModelSpec {
  const modelType = checkModelType(config, file, OLMOE_MODEL_TYPE);
  if (config.clip_qkv !== null && optionalNumber(config, 'clip_qkv', file) !== undefined) {
    throw new ConfigError(file, 'clip_qkv', 'is not supported (only null)');
  }
  if (optionalBool(config, 'attention_bias', file) === true) {
    throw new ConfigError(file, 'attention_bias', 'true is not supported (it also adds an o_proj bias)');
  }
  const common = parseCommon(config, file, DEFAULTS, false);
  const numExperts = requireInt(config, 'num_experts', file, { min: 1 });
  const k = requireInt(config, 'num_experts_per_tok', file, { min: 1, max: numExperts });
  const width = requireInt(config, 'intermediate_size', file, { min: 1 });
  const normTopkProb = optionalBool(config, 'norm_topk_prob', file) ?? false;
  const mlp = Array.from({ length: common.numLayers }, (): MlpSpec => softmaxMoe(numExperts, k, width, normTopkProb));
  return { modelType, ...common, attentionBias: false, qkNorm: 'projection', mlp };
}

function weightNames(spec: ModelSpec): ModelWeightNames {
  const mlpNames = (layerPrefix: string, mlp: MlpSpec): MlpWeightNames => ({
    kind: 'moe',
    ...routedExpertNames(`${layerPrefix}.mlp`, mlp.kind === 'moe' ? mlp.numRoutedExperts : 0),
  });
  return { ...topLevelNames(spec), layers: decoderLayerNames(spec, { qkNorm: true }, mlpNames) };
}

export const olmoe: FamilyDefinition = { modelType: OLMOE_MODEL_TYPE, parseConfig, weightNames };
