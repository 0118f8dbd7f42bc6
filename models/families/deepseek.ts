// DeepSeekMoE (model_type "deepseek", e.g. deepseek-ai/deepseek-moe-16b-base/-chat), as
// defined by the Hugging Face remote code configuration_deepseek.py and modeling_deepseek.py.
// Defaults below are configuration_deepseek.py's; keys that fix tensor shapes are required
// because a default there would only turn a broken config.json into a shape error later.
//
// Semantics the engine must match (read from modeling_deepseek.py):
// - Layer i is MoE iff n_routed_experts is not None and i >= first_k_dense_replace and
//   i % moe_layer_freq == 0; otherwise a dense SwiGLU MLP of intermediate_size.
// - MoEGate: logits = hidden @ gate.weight^T (no bias), scores = softmax(logits) over the
//   routed experts, top-k (k = num_experts_per_tok) of the scores; the weights are the chosen
//   softmax probabilities themselves, renormalised (w / (sum(w) + 1e-20)) ONLY when
//   top_k > 1 and norm_topk_prob. No routed scaling factor, no groups, no bias. The original
//   computes the gate in the model dtype (no fp32 upcast, unlike DeepSeek-V2); we compute
//   in fp32, which is what that code does for fp32 weights.
// - Output = sum_j w_j * Expert_j(h) + SharedExperts(h): the shared experts are one
//   SwiGLU MLP of width moe_intermediate_size * n_shared_experts, added ungated and unscaled
//   (absent when n_shared_experts is None).
// - Attention: Llama-style MHA/GQA, head_dim = hidden_size / num_attention_heads, RoPE on the
//   whole head in rotate-half layout (inv_freq = theta^(-2i/d)); linear scaling divides
//   positions by factor; dynamic NTK rescales the base to
//   theta * (factor * seqLen / max_position_embeddings - (factor - 1))^(d / (d - 2)) once
//   the sequence (seqLen = total cached length at that step) outgrows max_position_embeddings;
//   the remote code keeps that rebuilt table, so it is stateful. RMSNorm computes in fp32:
//   x * rsqrt(mean(x^2) + eps) * w.
import { ConfigError } from '../errors.ts';
import {
  optionalBool,
  optionalEnum,
  optionalInt,
  optionalIntList,
  optionalNumber,
  optionalObject,
  requireInt,
  requireNumber,
  requireString,
  type JsonObject,
} from '../config-fields.ts';
import type { FamilyDefinition, LayerWeightNames, MlpWeightNames, ModelWeightNames, SwigluWeightNames } from '../family.ts';
import type { MlpSpec, ModelSpec, MoeMlpSpec, RopeScaling } from '../spec.ts';

export const DEEPSEEK_MODEL_TYPE = 'deepseek';

/** configuration_deepseek.py defaults for the keys it lets a config.json omit. */
const DEFAULTS = {
  firstKDenseReplace: 0,
  moeLayerFreq: 1,
  normTopkProb: false,
  ropeTheta: 10000,
  rmsNormEps: 1e-6,
  maxPositionEmbeddings: 2048,
  bosTokenId: 100000,
  eosTokenId: 100001,
  tieWordEmbeddings: false,
  attentionBias: false,
} as const;

function parseConfig(config: JsonObject, file: string): ModelSpec {
  const modelType = requireString(config, 'model_type', file);
  if (modelType !== DEEPSEEK_MODEL_TYPE) {
    throw new ConfigError(file, 'model_type', `must be "${DEEPSEEK_MODEL_TYPE}" for this family (got "${modelType}")`);
  }
  checkSupportedVariants(config, file);
  const attention = parseAttentionShape(config, file);
  const numLayers = requireInt(config, 'num_hidden_layers', file, { min: 1 });
  const maxPositions = optionalInt(config, 'max_position_embeddings', file, { min: 1 }) ?? DEFAULTS.maxPositionEmbeddings;
  return {
    modelType,
    ...attention,
    numLayers,
    vocabSize: requireInt(config, 'vocab_size', file, { min: 1 }),
    rmsNormEps: optionalNumber(config, 'rms_norm_eps', file, { above: 0 }) ?? DEFAULTS.rmsNormEps,
    maxPositions,
    rope: {
      theta: optionalNumber(config, 'rope_theta', file, { above: 0 }) ?? DEFAULTS.ropeTheta,
      rotaryDim: attention.headDim,
      scaling: parseRopeScaling(config, file, maxPositions),
    },
    tieWordEmbeddings: optionalBool(config, 'tie_word_embeddings', file) ?? DEFAULTS.tieWordEmbeddings,
    attentionBias: DEFAULTS.attentionBias,
    mlp: parseMlpLayers(config, file, numLayers),
    ...parseTokenIds(config, file),
  };
}

/** Rejects values modeling_deepseek.py would run differently from what the engine implements. */
function checkSupportedVariants(config: JsonObject, file: string): void {
  optionalEnum(config, 'hidden_act', file, ['silu'], 'silu');
  // MoEGate raises NotImplementedError for anything but softmax.
  optionalEnum(config, 'scoring_func', file, ['softmax'], 'softmax');
  // The deepseek remote code has no topk_method; a V2-style config naming another is not this family.
  optionalEnum(config, 'topk_method', file, ['greedy'], 'greedy');
  if (optionalBool(config, 'attention_bias', file) === true) {
    // modeling_deepseek.py then biases q, k, v AND o_proj; the family contract names no o_proj bias.
    throw new ConfigError(file, 'attention_bias', 'true is not supported (it also adds an o_proj bias)');
  }
}

function parseAttentionShape(config: JsonObject, file: string): Pick<ModelSpec, 'hiddenSize' | 'numHeads' | 'numKvHeads' | 'headDim'> {
  const hiddenSize = requireInt(config, 'hidden_size', file, { min: 1 });
  const numHeads = requireInt(config, 'num_attention_heads', file, { min: 1 });
  // configuration_deepseek.py: a missing num_key_value_heads means plain multi-head attention.
  const numKvHeads = optionalInt(config, 'num_key_value_heads', file, { min: 1 }) ?? numHeads;
  if (hiddenSize % numHeads !== 0) {
    throw new ConfigError(file, 'num_attention_heads', `(${numHeads}) must divide hidden_size (${hiddenSize})`);
  }
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(file, 'num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  }
  const headDim = hiddenSize / numHeads;
  if (headDim % 2 !== 0) {
    throw new ConfigError(file, 'num_attention_heads', `gives an odd head_dim ${headDim}; rotary embeddings need it even`);
  }
  return { hiddenSize, numHeads, numKvHeads, headDim };
}

function parseRopeScaling(config: JsonObject, file: string, maxPositions: number): RopeScaling | null {
  const scaling = optionalObject(config, 'rope_scaling', file);
  if (scaling === undefined) return null;
  // The remote code reads rope_scaling["type"]; newer transformers write "rope_type".
  const typeKey = scaling.type === undefined && scaling.rope_type !== undefined ? 'rope_type' : 'type';
  const type = requireString(scaling, typeKey, file, { label: `rope_scaling.${typeKey}` });
  const factor = requireNumber(scaling, 'factor', file, { label: 'rope_scaling.factor', min: 1 });
  if (type === 'linear') return { type, factor };
  if (type === 'dynamic') return { type, factor, originalMaxPositions: maxPositions };
  throw new ConfigError(file, `rope_scaling.${typeKey}`, `must be "linear" or "dynamic" (got "${type}")`);
}

function parseMlpLayers(config: JsonObject, file: string, numLayers: number): MlpSpec[] {
  const intermediateSize = requireInt(config, 'intermediate_size', file, { min: 1 });
  const moe = parseMoe(config, file);
  const firstDense = optionalInt(config, 'first_k_dense_replace', file, { min: 0 }) ?? DEFAULTS.firstKDenseReplace;
  const frequency = optionalInt(config, 'moe_layer_freq', file, { min: 1 }) ?? DEFAULTS.moeLayerFreq;
  return Array.from({ length: numLayers }, (_, layer): MlpSpec => {
    if (moe !== null && isMoeLayer(layer, firstDense, frequency)) return { ...moe };
    return { kind: 'dense', intermediateSize };
  });
}

/** modeling_deepseek.py's DeepseekDecoderLayer rule (given that n_routed_experts is set). */
export function isMoeLayer(layer: number, firstKDenseReplace: number, moeLayerFreq: number): boolean {
  return layer >= firstKDenseReplace && layer % moeLayerFreq === 0;
}

/** The MoE layer shape, or null when n_routed_experts is null/absent (an all-dense model). */
function parseMoe(config: JsonObject, file: string): MoeMlpSpec | null {
  const numRoutedExperts = optionalInt(config, 'n_routed_experts', file, { min: 1 });
  const normTopkProb = optionalBool(config, 'norm_topk_prob', file) ?? DEFAULTS.normTopkProb;
  if (numRoutedExperts === undefined) return null;
  const expertIntermediateSize = requireInt(config, 'moe_intermediate_size', file, { min: 1 });
  // n_shared_experts None means no shared MLP; 0 gives a zero-width one, i.e. the same.
  const numShared = optionalInt(config, 'n_shared_experts', file, { min: 0 }) ?? 0;
  const numExpertsPerToken = requireInt(config, 'num_experts_per_tok', file, { min: 1, max: numRoutedExperts });
  return {
    kind: 'moe',
    numRoutedExperts,
    numExpertsPerToken,
    expertIntermediateSize,
    sharedIntermediateSize: expertIntermediateSize * numShared,
    scoringFunc: 'softmax',
    // MoEGate renormalises only when top_k > 1: a lone expert keeps its softmax probability
    // as its weight instead of 1. The spec holds the effective rule.
    normTopkProb: normTopkProb && numExpertsPerToken > 1,
    routedScalingFactor: 1,
  };
}

function parseTokenIds(config: JsonObject, file: string): Pick<ModelSpec, 'bosTokenId' | 'eosTokenIds'> {
  // An explicit null means "none"; an absent key takes configuration_deepseek.py's default.
  const bos = config.bos_token_id === null ? null : (optionalInt(config, 'bos_token_id', file, { min: 0 }) ?? DEFAULTS.bosTokenId);
  const eos = config.eos_token_id === null ? [] : (optionalIntList(config, 'eos_token_id', file, { min: 0 }) ?? [DEFAULTS.eosTokenId]);
  return { bosTokenId: bos, eosTokenIds: eos };
}

function swigluNames(prefix: string): SwigluWeightNames {
  return { gate: `${prefix}.gate_proj.weight`, up: `${prefix}.up_proj.weight`, down: `${prefix}.down_proj.weight` };
}

/** DeepSeek's MLP tensor names (also DeepSeek-V2/V3's, which add the V3 gate bias). */
export function deepseekMlpNames(prefix: string, mlp: MlpSpec): MlpWeightNames {
  if (mlp.kind === 'dense') return { kind: 'dense', mlp: swigluNames(prefix) };
  return {
    kind: 'moe',
    router: `${prefix}.gate.weight`,
    experts: Array.from({ length: mlp.numRoutedExperts }, (_, j) => swigluNames(`${prefix}.experts.${j}`)),
    ...(mlp.sharedIntermediateSize > 0 ? { shared: swigluNames(`${prefix}.shared_experts`) } : {}),
  };
}

function layerNames(spec: ModelSpec, layer: number): LayerWeightNames {
  const prefix = `model.layers.${layer}`;
  const attn = `${prefix}.self_attn`;
  const bias = spec.attentionBias ? { qBias: `${attn}.q_proj.bias`, kBias: `${attn}.k_proj.bias`, vBias: `${attn}.v_proj.bias` } : {};
  return {
    inputNorm: `${prefix}.input_layernorm.weight`,
    postAttentionNorm: `${prefix}.post_attention_layernorm.weight`,
    attention: { q: `${attn}.q_proj.weight`, k: `${attn}.k_proj.weight`, v: `${attn}.v_proj.weight`, o: `${attn}.o_proj.weight`, ...bias },
    mlp: deepseekMlpNames(`${prefix}.mlp`, spec.mlp[layer]),
  };
}

function weightNames(spec: ModelSpec): ModelWeightNames {
  const embedTokens = 'model.embed_tokens.weight';
  return {
    embedTokens,
    finalNorm: 'model.norm.weight',
    lmHead: spec.tieWordEmbeddings ? embedTokens : 'lm_head.weight',
    layers: Array.from({ length: spec.numLayers }, (_, layer) => layerNames(spec, layer)),
  };
}

export const deepseek: FamilyDefinition = {
  modelType: DEEPSEEK_MODEL_TYPE,
  parseConfig,
  weightNames,
};
