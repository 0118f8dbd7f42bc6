// Mixtral (model_type "mixtral", e.g. mistralai/Mixtral-8x7B-v0.1), as Hugging Face
// transformers defines it (configuration_mixtral.py, modeling_mixtral.py).
// - Every layer is MoE: num_local_experts experts of intermediate_size, no shared expert.
// - Router (block_sparse_moe.gate): softmax over the experts in fp32, top-k, and the k
//   weights are ALWAYS renormalised to sum to one (no norm_topk_prob key, no epsilon).
// - Experts: w1 = gate, w3 = up, w2 = down (SwiGLU), one tensor per expert under
//   block_sparse_moe as the released checkpoints have them. Newer transformers names the
//   module `mlp` and keeps the experts fused (experts.gate_up_proj [E, 2I, H], gate rows
//   first, experts.down_proj [E, H, I]); both spellings and both layouts are read.
// - Attention: plain GQA with RoPE (rope_theta 1e6 in releases), no biases; head_dim may be
//   given explicitly (newer configs), else hidden / heads. sliding_window must be null: the
//   engine has no sliding-window attention.
import { requireInt, type JsonObject } from '../config-fields.ts';
import type { FamilyDefinition, MlpWeightNames, ModelWeightNames, SwigluWeightNames } from '../family.ts';
import type { MlpSpec, ModelSpec } from '../spec.ts';
import {
  checkModelType,
  decoderLayerNames,
  parseCommon,
  rejectSlidingWindow,
  routedExpertNames,
  softmaxMoe,
  topLevelNames,
} from './common.ts';

export const MIXTRAL_MODEL_TYPE = 'mixtral';

const DEFAULTS = { ropeTheta: 1e6, rmsNormEps: 1e-5, maxPositions: 4096 * 32, bosTokenId: 1, eosTokenId: 2, tieWordEmbeddings: false };

function parseConfig(config: JsonObject, file: string): ModelSpec {
  const modelType = checkModelType(config, file, MIXTRAL_MODEL_TYPE);
  rejectSlidingWindow(config, file, null);
  const common = parseCommon(config, file, DEFAULTS, true);
  const numExperts = requireInt(config, 'num_local_experts', file, { min: 1 });
  const k = requireInt(config, 'num_experts_per_tok', file, { min: 1, max: numExperts });
  const width = requireInt(config, 'intermediate_size', file, { min: 1 });
  const mlp = Array.from({ length: common.numLayers }, (): MlpSpec => softmaxMoe(numExperts, k, width, true));
  return { modelType, ...common, attentionBias: false, mlp };
}

function expertNames(prefix: string): SwigluWeightNames {
  return { gate: `${prefix}.w1.weight`, up: `${prefix}.w3.weight`, down: `${prefix}.w2.weight` };
}

function weightNames(spec: ModelSpec): ModelWeightNames {
  const mlpNames = (layerPrefix: string, mlp: MlpSpec): MlpWeightNames => ({
    kind: 'moe',
    ...routedExpertNames(`${layerPrefix}.block_sparse_moe`, mlp.kind === 'moe' ? mlp.numRoutedExperts : 0, expertNames),
  });
  return { ...topLevelNames(spec), layers: decoderLayerNames(spec, {}, mlpNames) };
}

export const mixtral: FamilyDefinition = {
  modelType: MIXTRAL_MODEL_TYPE,
  parseConfig,
  weightNames,
  checkpointRenames: [['.block_sparse_moe.', '.mlp.']],
};
