// Qwen2-MoE (model_type "qwen2_moe", e.g. Qwen/Qwen1.5-MoE-A2.7B), as Hugging Face
// transformers defines it (configuration_qwen2_moe.py, modeling_qwen2_moe.py).
// - Layer i is MoE iff i is not in mlp_only_layers and num_experts > 0 and
//   (i + 1) % decoder_sparse_step == 0; otherwise a dense SwiGLU MLP of intermediate_size.
// - Router: softmax over num_experts in fp32, top-k, renormalised (no epsilon) only when
//   norm_topk_prob, no scaling.
// - Shared expert: one SwiGLU MLP of shared_expert_intermediate_size whose output is
//   multiplied by sigmoid(shared_expert_gate . x), a Linear(hidden, 1) without bias.
// - Attention: q/k/v projections carry biases, o_proj does not; head_dim = hidden / heads.
import { optionalBool, optionalInt, optionalIntList, requireInt, type JsonObject } from '../config-fields.ts';
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

export const QWEN2_MOE_MODEL_TYPE = 'qwen2_moe';

const DEFAULTS = { ropeTheta: 10000, rmsNormEps: 1e-6, maxPositions: 32768, bosTokenId: null, eosTokenId: null, tieWordEmbeddings: false };

/** modeling_qwen2_moe.py's (and modeling_qwen3_moe.py's) sparse-layer rule. */
export function isQwenMoeLayer(layer: number, numExperts: number, sparseStep: number, mlpOnlyLayers: readonly number[]): boolean {
  return !mlpOnlyLayers.includes(layer) && numExperts > 0 && (layer + 1) % sparseStep === 0;
}

/** The per-layer MLP specs of a Qwen-MoE config, given the MoE layer shape. */
export function parseQwenMlpLayers(config: JsonObject, file: string, numLayers: number, moe: (numExperts: number) => MlpSpec): MlpSpec[] {
  const intermediateSize = requireInt(config, 'intermediate_size', file, { min: 1 });
  const numExperts = optionalInt(config, 'num_experts', file, { min: 0 }) ?? 0;
  const sparseStep = optionalInt(config, 'decoder_sparse_step', file, { min: 1 }) ?? 1;
  const mlpOnly = optionalIntList(config, 'mlp_only_layers', file, { min: 0 }) ?? [];
  return Array.from({ length: numLayers }, (_, layer): MlpSpec =>
    isQwenMoeLayer(layer, numExperts, sparseStep, mlpOnly) ? moe(numExperts) : { kind: 'dense', intermediateSize },
  );
}

function parseConfig(config: JsonObject, file: string): ModelSpec {
  const modelType = checkModelType(config, file, QWEN2_MOE_MODEL_TYPE);
  rejectSlidingWindow(config, file, 'use_sliding_window');
  const common = parseCommon(config, file, DEFAULTS, false);
  const normTopkProb = optionalBool(config, 'norm_topk_prob', file) ?? false;
  const mlp = parseQwenMlpLayers(config, file, common.numLayers, (numExperts) => {
    const k = requireInt(config, 'num_experts_per_tok', file, { min: 1, max: numExperts });
    const expertWidth = requireInt(config, 'moe_intermediate_size', file, { min: 1 });
    const sharedWidth = requireInt(config, 'shared_expert_intermediate_size', file, { min: 1 });
    return softmaxMoe(numExperts, k, expertWidth, normTopkProb, { width: sharedWidth, gated: true });
  });
  // Qwen2MoeAttention hard-codes bias=True on q/k/v (and False on o_proj).
  return { modelType, ...common, attentionBias: true, mlp };
}

function mlpNames(layerPrefix: string, mlp: MlpSpec): MlpWeightNames {
  const prefix = `${layerPrefix}.mlp`;
  if (mlp.kind === 'dense') return { kind: 'dense', mlp: swigluNames(prefix) };
  return {
    kind: 'moe',
    ...routedExpertNames(prefix, mlp.numRoutedExperts),
    shared: swigluNames(`${prefix}.shared_expert`),
    sharedGate: `${prefix}.shared_expert_gate.weight`,
  };
}

function weightNames(spec: ModelSpec): ModelWeightNames {
  return { ...topLevelNames(spec), layers: decoderLayerNames(spec, { qkvBias: true }, mlpNames) };
}

export const qwen2Moe: FamilyDefinition = { modelType: QWEN2_MOE_MODEL_TYPE, parseConfig, weightNames };
