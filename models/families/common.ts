// Config parsing and tensor naming the Llama-lineage MoE families share (Mixtral, Qwen2-MoE,
// Qwen3-MoE, OLMoE): GQA attention with RoPE in rotate-half layout, RMSNorm before attention
// and MLP, SwiGLU experts. Each family file keeps only what differs: its keys' defaults, its
// dense-vs-MoE layer rule, its gating and its tensor names.
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
import type { AttentionWeightNames, LayerWeightNames, MlpWeightNames, SwigluWeightNames } from '../family.ts';
import type { MlpSpec, ModelSpec, MoeMlpSpec, RopeScaling } from '../spec.ts';

/** Per-family defaults of the keys a config.json may omit (the family's configuration_*.py). */
export interface CommonDefaults {
  ropeTheta: number;
  rmsNormEps: number;
  maxPositions: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  tieWordEmbeddings: boolean;
}

export function checkModelType(config: JsonObject, file: string, expected: string): string {
  const modelType = requireString(config, 'model_type', file);
  if (modelType !== expected) throw new ConfigError(file, 'model_type', `must be "${expected}" for this family (got "${modelType}")`);
  optionalEnum(config, 'hidden_act', file, ['silu'], 'silu');
  // Quantised releases (DeepSeek-V3's FP8 blocks with weight_scale_inv, GPTQ, AWQ) store
  // tensors this loader does not read; say so rather than fail later on an odd tensor.
  const quantization = optionalObject(config, 'quantization_config', file);
  if (quantization !== undefined) {
    const method = typeof quantization.quant_method === 'string' ? ` ("${quantization.quant_method}")` : '';
    throw new ConfigError(
      file,
      'quantization_config',
      `is set${method}: quantised checkpoints are not supported; use a bf16/fp16/fp32 checkpoint`,
    );
  }
  return modelType;
}

type AttentionShape = Pick<ModelSpec, 'hiddenSize' | 'numHeads' | 'numKvHeads' | 'headDim'>;

/** hidden_size, heads, kv heads and head_dim (explicit key where the family has one, else hidden / heads). */
export function parseAttentionShape(config: JsonObject, file: string, allowHeadDimKey: boolean): AttentionShape {
  const hiddenSize = requireInt(config, 'hidden_size', file, { min: 1 });
  const numHeads = requireInt(config, 'num_attention_heads', file, { min: 1 });
  const numKvHeads = optionalInt(config, 'num_key_value_heads', file, { min: 1 }) ?? numHeads;
  if (numHeads % numKvHeads !== 0)
    throw new ConfigError(file, 'num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const explicit = allowHeadDimKey && config.head_dim !== null ? optionalInt(config, 'head_dim', file, { min: 2 }) : undefined;
  if (explicit === undefined && hiddenSize % numHeads !== 0) {
    throw new ConfigError(file, 'num_attention_heads', `(${numHeads}) must divide hidden_size (${hiddenSize})`);
  }
  const headDim = explicit ?? hiddenSize / numHeads;
  if (headDim % 2 !== 0) throw new ConfigError(file, 'head_dim', `${headDim} is odd; rotary embeddings need it even`);
  return { hiddenSize, numHeads, numKvHeads, headDim };
}

/** rope_scaling: null or linear only (HF "linear" divides positions by the factor). */
function parseRopeScaling(config: JsonObject, file: string): RopeScaling | null {
  const scaling = optionalObject(config, 'rope_scaling', file);
  if (scaling === undefined) return null;
  const typeKey = scaling.rope_type !== undefined ? 'rope_type' : 'type';
  const type = requireString(scaling, typeKey, file, { label: `rope_scaling.${typeKey}` });
  if (type === 'default') return null;
  if (type !== 'linear')
    throw new ConfigError(file, `rope_scaling.${typeKey}`, `"${type}" is not supported for this family (supported: linear)`);
  return { type, factor: requireNumber(scaling, 'factor', file, { label: 'rope_scaling.factor', min: 1 }) };
}

/** Sliding-window attention is not implemented: accept it only where HF would not use it. */
export function rejectSlidingWindow(config: JsonObject, file: string, useKey: string | null): void {
  const enabled =
    useKey === null ? config.sliding_window !== undefined && config.sliding_window !== null : optionalBool(config, useKey, file) === true;
  if (enabled) throw new ConfigError(file, useKey ?? 'sliding_window', 'sliding-window attention is not supported');
}

/** The spec fields every Llama-lineage family fills the same way. */
export function parseCommon(config: JsonObject, file: string, defaults: CommonDefaults, allowHeadDimKey: boolean) {
  const maxPositions = optionalInt(config, 'max_position_embeddings', file, { min: 1 }) ?? defaults.maxPositions;
  const attention = parseAttentionShape(config, file, allowHeadDimKey);
  const bos = config.bos_token_id === null ? null : (optionalInt(config, 'bos_token_id', file, { min: 0 }) ?? defaults.bosTokenId);
  const eosDefault = defaults.eosTokenId === null ? [] : [defaults.eosTokenId];
  const eos = config.eos_token_id === null ? [] : (optionalIntList(config, 'eos_token_id', file, { min: 0 }) ?? eosDefault);
  return {
    ...attention,
    numLayers: requireInt(config, 'num_hidden_layers', file, { min: 1 }),
    vocabSize: requireInt(config, 'vocab_size', file, { min: 1 }),
    rmsNormEps: optionalNumber(config, 'rms_norm_eps', file, { above: 0 }) ?? defaults.rmsNormEps,
    maxPositions,
    rope: {
      theta: optionalNumber(config, 'rope_theta', file, { above: 0 }) ?? defaults.ropeTheta,
      rotaryDim: attention.headDim,
      scaling: parseRopeScaling(config, file),
    },
    tieWordEmbeddings: optionalBool(config, 'tie_word_embeddings', file) ?? defaults.tieWordEmbeddings,
    bosTokenId: bos,
    eosTokenIds: eos,
  };
}

/** Softmax top-k routing without groups, bias or scaling (every family here but DeepSeek-V2/V3). */
export function softmaxMoe(
  numRoutedExperts: number,
  numExpertsPerToken: number,
  expertIntermediateSize: number,
  normTopkProb: boolean,
  shared: { width: number; gated: boolean } = { width: 0, gated: false },
): MoeMlpSpec {
  return {
    kind: 'moe',
    numRoutedExperts,
    numExpertsPerToken,
    expertIntermediateSize,
    sharedIntermediateSize: shared.width,
    scoringFunc: 'softmax',
    normTopkProb,
    routedScalingFactor: 1,
    ...(shared.gated ? { sharedExpertGate: true } : {}),
  };
}

export function swigluNames(prefix: string): SwigluWeightNames {
  return { gate: `${prefix}.gate_proj.weight`, up: `${prefix}.up_proj.weight`, down: `${prefix}.down_proj.weight` };
}

/** q/k/v/o of `prefix` (a self_attn module), with q/k/v biases and q/k norms when asked. */
export function attentionNames(prefix: string, opts: { qkvBias?: boolean; qkNorm?: boolean } = {}): AttentionWeightNames {
  return {
    q: `${prefix}.q_proj.weight`,
    k: `${prefix}.k_proj.weight`,
    v: `${prefix}.v_proj.weight`,
    o: `${prefix}.o_proj.weight`,
    ...(opts.qkvBias ? { qBias: `${prefix}.q_proj.bias`, kBias: `${prefix}.k_proj.bias`, vBias: `${prefix}.v_proj.bias` } : {}),
    ...(opts.qkNorm ? { qNorm: `${prefix}.q_norm.weight`, kNorm: `${prefix}.k_norm.weight` } : {}),
  };
}

/** Routed experts of the MoE block at `prefix`: router, one SwiGLU per expert, and the fused 3-D form newer releases save. */
export function routedExpertNames(prefix: string, numExperts: number, expert: (prefix: string) => SwigluWeightNames = swigluNames) {
  return {
    router: `${prefix}.gate.weight`,
    experts: Array.from({ length: numExperts }, (_, j) => expert(`${prefix}.experts.${j}`)),
    fusedExperts: { gateUp: `${prefix}.experts.gate_up_proj`, down: `${prefix}.experts.down_proj` },
  };
}

/** Every decoder layer: norms and self_attn where Llama puts them, the MLP as `mlpNames` names it. */
export function decoderLayerNames(
  spec: ModelSpec,
  attention: { qkvBias?: boolean; qkNorm?: boolean },
  mlpNames: (layerPrefix: string, mlp: MlpSpec) => MlpWeightNames,
): LayerWeightNames[] {
  return spec.mlp.map((mlp, i) => ({
    inputNorm: `model.layers.${i}.input_layernorm.weight`,
    postAttentionNorm: `model.layers.${i}.post_attention_layernorm.weight`,
    attention: attentionNames(`model.layers.${i}.self_attn`, attention),
    mlp: mlpNames(`model.layers.${i}`, mlp),
  }));
}

/** A model's top-level tensor names (embeddings, final norm, LM head). */
export function topLevelNames(spec: ModelSpec): { embedTokens: string; finalNorm: string; lmHead: string } {
  const embedTokens = 'model.embed_tokens.weight';
  return { embedTokens, finalNorm: 'model.norm.weight', lmHead: spec.tieWordEmbeddings ? embedTokens : 'lm_head.weight' };
}
