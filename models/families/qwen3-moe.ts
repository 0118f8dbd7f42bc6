// Qwen3-MoE (model_type "qwen3_moe", e.g. Qwen/Qwen3-30B-A3B), as Hugging Face transformers
// defines it (configuration_qwen3_moe.py, modeling_qwen3_moe.py).
// - Sparse-layer rule as Qwen2-MoE (mlp_only_layers, decoder_sparse_step); no shared expert.
// - Router: softmax in fp32, top-k, renormalised (no epsilon) only when norm_topk_prob.
// - Attention: head_dim is its own key (128 in the released models, not hidden / heads);
//   q_norm and k_norm are RMSNorms over each head's head_dim values, applied after the
//   projection and before RoPE; q/k/v/o biases only with attention_bias (false in releases,
//   and then o_proj has one too, which the engine does not implement, so it is refused).
import { ConfigError } from '../errors.ts';
import { optionalBool, requireInt, type JsonObject } from '../config-fields.ts';
import type { FamilyDefinition, MlpWeightNames, ModelWeightNames } from '../family.ts';
import type { MlpSpec, ModelSpec } from '../spec.ts';
import {
  checkModelType,
  decoderLayerNames,
  parseCommon,
  rejectSlidingWindow,
  routedExpertNames,
  softmaxMoe,
  swigluNames,
  topLevelNames,
} from './common.ts';
import { parseQwenMlpLayers } from './qwen2-moe.ts';

export const QWEN3_MOE_MODEL_TYPE = 'qwen3_moe';

const DEFAULTS = { ropeTheta: 10000, rmsNormEps: 1e-6, maxPositions: 32768, bosTokenId: null, eosTokenId: null, tieWordEmbeddings: false };

function parseConfig(config: JsonObject, file: string): ModelSpec {
  const modelType = checkModelType(config, file, QWEN3_MOE_MODEL_TYPE);
  rejectSlidingWindow(config, file, 'use_sliding_window');
  if (optionalBool(config, 'attention_bias', file) === true) {
    throw new ConfigError(file, 'attention_bias', 'true is not supported (it also adds an o_proj bias)');
  }
  const common = parseCommon(config, file, DEFAULTS, true);
  const normTopkProb = optionalBool(config, 'norm_topk_prob', file) ?? false;
  const mlp = parseQwenMlpLayers(config, file, common.numLayers, (numExperts) => {
    const k = requireInt(config, 'num_experts_per_tok', file, { min: 1, max: numExperts });
    return softmaxMoe(numExperts, k, requireInt(config, 'moe_intermediate_size', file, { min: 1 }), normTopkProb);
  });
  return { modelType, ...common, attentionBias: false, qkNorm: 'head', mlp };
}

function mlpNames(layerPrefix: string, mlp: MlpSpec): MlpWeightNames {
  const prefix = `${layerPrefix}.mlp`;
  if (mlp.kind === 'dense') return { kind: 'dense', mlp: swigluNames(prefix) };
  return { kind: 'moe', ...routedExpertNames(prefix, mlp.numRoutedExperts) };
}

function weightNames(spec: ModelSpec): ModelWeightNames {
  return { ...topLevelNames(spec), layers: decoderLayerNames(spec, { qkNorm: true }, mlpNames) };
}

export const qwen3Moe: FamilyDefinition = { modelType: QWEN3_MOE_MODEL_TYPE, parseConfig, weightNames };
