// What DeepSeek-V2 and DeepSeek-V3 share (HF remote code modeling_deepseek.py of each, and
// transformers' deepseek_v2 / deepseek_v3): Multi-head Latent Attention with optional
// q_lora_rank, YaRN rope scaling, DeepSeekMoE's layer rule (first_k_dense_replace,
// moe_layer_freq) and shared experts of n_shared_experts * moe_intermediate_size, and the
// tensor names. The gate differs per version and lives in deepseek-v2.ts / deepseek-v3.ts.
//
// Attention semantics matched (DeepseekV2Attention, eager):
// - q = q_proj(x), or q_b_proj(RMSNorm(q_a_proj(x))) with q_lora_rank; per head q splits into
//   q_nope (qk_nope_head_dim) and q_pe (qk_rope_head_dim).
// - kv_a_proj_with_mqa(x) splits into the latent (kv_lora_rank, then kv_a_layernorm) and k_pe
//   (qk_rope_head_dim, ONE head shared by all query heads); kv_b_proj(latent) gives each
//   head's k_nope and value.
// - RoPE on q_pe and k_pe only, in the interleaved layout: pairs (2i, 2i+1) rotate by
//   frequency i (the reference permutes to [evens, odds] and applies rotate_half).
// - scores = (q_nope . k_nope + q_pe . k_pe) * softmax_scale, softmax_scale =
//   (qk_nope + qk_rope)^-0.5 * mscale(factor, mscale_all_dim)^2 under YaRN with mscale_all_dim.
import { ConfigError } from '../errors.ts';
import {
  optionalBool,
  optionalInt,
  optionalIntList,
  optionalNumber,
  optionalObject,
  requireInt,
  requireNumber,
  requireString,
  type JsonObject,
} from '../config-fields.ts';
import type { LayerWeightNames, MlpWeightNames, MlaWeightNames, ModelWeightNames } from '../family.ts';
import { yarnMscale } from '../rope-scaling.ts';
import type { MlaSpec, MlpSpec, ModelSpec, MoeMlpSpec, RopeScaling } from '../spec.ts';
import { checkModelType } from './common.ts';
import { deepseekMlpNames, isMoeLayer } from './deepseek.ts';

export interface MlaDefaults {
  bosTokenId: number;
  eosTokenId: number;
}

function parseYarn(config: JsonObject, file: string): RopeScaling | null {
  const s = optionalObject(config, 'rope_scaling', file);
  if (s === undefined) return null;
  const typeKey = s.type === undefined && s.rope_type !== undefined ? 'rope_type' : 'type';
  const type = requireString(s, typeKey, file, { label: `rope_scaling.${typeKey}` });
  const factor = requireNumber(s, 'factor', file, { label: 'rope_scaling.factor', min: 1 });
  if (type === 'linear') return { type, factor };
  if (type !== 'yarn') throw new ConfigError(file, `rope_scaling.${typeKey}`, `must be "yarn" or "linear" (got "${type}")`);
  const num = (key: string, fallback: number) => optionalNumber(s, key, file, { label: `rope_scaling.${key}` }) ?? fallback;
  return {
    type,
    factor,
    originalMaxPositions: requireInt(s, 'original_max_position_embeddings', file, {
      label: 'rope_scaling.original_max_position_embeddings',
      min: 1,
    }),
    betaFast: num('beta_fast', 32),
    betaSlow: num('beta_slow', 1),
    mscale: num('mscale', 1),
    mscaleAllDim: num('mscale_all_dim', 0),
  };
}

function parseMla(config: JsonObject, file: string, rope: RopeScaling | null): MlaSpec {
  const qkNopeHeadDim = requireInt(config, 'qk_nope_head_dim', file, { min: 1 });
  const qkRopeHeadDim = requireInt(config, 'qk_rope_head_dim', file, { min: 2 });
  if (qkRopeHeadDim % 2 !== 0) throw new ConfigError(file, 'qk_rope_head_dim', 'must be even for rotary embeddings');
  let softmaxScale = 1 / Math.sqrt(qkNopeHeadDim + qkRopeHeadDim);
  // The reference folds YaRN's attention temperature into the scale only when mscale_all_dim is set.
  if (rope?.type === 'yarn' && rope.mscaleAllDim) softmaxScale *= yarnMscale(rope.factor, rope.mscaleAllDim) ** 2;
  return {
    kvLoraRank: requireInt(config, 'kv_lora_rank', file, { min: 1 }),
    qLoraRank: config.q_lora_rank === null ? null : (optionalInt(config, 'q_lora_rank', file, { min: 1 }) ?? null),
    qkNopeHeadDim,
    qkRopeHeadDim,
    vHeadDim: requireInt(config, 'v_head_dim', file, { min: 1 }),
    softmaxScale,
  };
}

/** The spec of a DeepSeek-V2/V3 config; `moe` builds the version's MoE layer shape (null: no MoE). */
export function parseMlaModel(
  config: JsonObject,
  file: string,
  modelType: string,
  defaults: MlaDefaults,
  moe: () => MoeMlpSpec | null,
): ModelSpec {
  checkModelType(config, file, modelType);
  if (optionalBool(config, 'attention_bias', file) === true) throw new ConfigError(file, 'attention_bias', 'true is not supported');
  // transformers' native deepseek_v3 can rotate non-interleaved halves instead; only the
  // released (interleaved) layout is implemented.
  if (optionalBool(config, 'rope_interleave', file) === false) throw new ConfigError(file, 'rope_interleave', 'false is not supported');
  const hiddenSize = requireInt(config, 'hidden_size', file, { min: 1 });
  const numHeads = requireInt(config, 'num_attention_heads', file, { min: 1 });
  const numLayers = requireInt(config, 'num_hidden_layers', file, { min: 1 });
  const maxPositions = optionalInt(config, 'max_position_embeddings', file, { min: 1 }) ?? 2048;
  const scaling = parseYarn(config, file);
  const mla = parseMla(config, file, scaling);
  const intermediateSize = requireInt(config, 'intermediate_size', file, { min: 1 });
  const moeSpec = moe();
  const firstDense = optionalInt(config, 'first_k_dense_replace', file, { min: 0 }) ?? 0;
  const freq = optionalInt(config, 'moe_layer_freq', file, { min: 1 }) ?? 1;
  const mlp = Array.from({ length: numLayers }, (_, i): MlpSpec =>
    moeSpec !== null && isMoeLayer(i, firstDense, freq) ? { ...moeSpec } : { kind: 'dense', intermediateSize },
  );
  const bos = config.bos_token_id === null ? null : (optionalInt(config, 'bos_token_id', file, { min: 0 }) ?? defaults.bosTokenId);
  const eos = config.eos_token_id === null ? [] : (optionalIntList(config, 'eos_token_id', file, { min: 0 }) ?? [defaults.eosTokenId]);
  return {
    modelType,
    hiddenSize,
    numLayers,
    numHeads,
    // MLA has no kv heads; a plain K/V cache of this model would hold every head's keys and values.
    numKvHeads: numHeads,
    headDim: mla.qkNopeHeadDim + mla.qkRopeHeadDim,
    vocabSize: requireInt(config, 'vocab_size', file, { min: 1 }),
    rmsNormEps: optionalNumber(config, 'rms_norm_eps', file, { above: 0 }) ?? 1e-6,
    maxPositions,
    rope: { theta: optionalNumber(config, 'rope_theta', file, { above: 0 }) ?? 10000, rotaryDim: mla.qkRopeHeadDim, scaling },
    tieWordEmbeddings: optionalBool(config, 'tie_word_embeddings', file) ?? false,
    attentionBias: false,
    mla,
    mlp,
    bosTokenId: bos,
    eosTokenIds: eos,
  };
}

function mlaNames(spec: ModelSpec, attn: string): MlaWeightNames {
  const q =
    spec.mla?.qLoraRank == null
      ? { q: `${attn}.q_proj.weight` }
      : { qA: `${attn}.q_a_proj.weight`, qANorm: `${attn}.q_a_layernorm.weight`, qB: `${attn}.q_b_proj.weight` };
  return {
    kind: 'mla',
    ...q,
    kvA: `${attn}.kv_a_proj_with_mqa.weight`,
    kvANorm: `${attn}.kv_a_layernorm.weight`,
    kvB: `${attn}.kv_b_proj.weight`,
    o: `${attn}.o_proj.weight`,
  };
}

function mlpNames(prefix: string, mlp: MlpSpec): MlpWeightNames {
  const names = deepseekMlpNames(prefix, mlp);
  if (names.kind === 'dense' || mlp.kind !== 'moe' || !mlp.correctionBias) return names;
  return { ...names, correctionBias: `${prefix}.gate.e_score_correction_bias` };
}

export function mlaWeightNames(spec: ModelSpec): ModelWeightNames {
  const embedTokens = 'model.embed_tokens.weight';
  const layers = spec.mlp.map((mlp, i): LayerWeightNames => ({
    inputNorm: `model.layers.${i}.input_layernorm.weight`,
    postAttentionNorm: `model.layers.${i}.post_attention_layernorm.weight`,
    attention: mlaNames(spec, `model.layers.${i}.self_attn`),
    mlp: mlpNames(`model.layers.${i}.mlp`, mlp),
  }));
  return { embedTokens, finalNorm: 'model.norm.weight', lmHead: spec.tieWordEmbeddings ? embedTokens : 'lm_head.weight', layers };
}

/** n_shared_experts * moe_intermediate_size, and the routed experts' shape, shared by both versions. */
export function mlaExpertShape(config: JsonObject, file: string, numRoutedExperts: number) {
  const expertIntermediateSize = requireInt(config, 'moe_intermediate_size', file, { min: 1 });
  const numShared = optionalInt(config, 'n_shared_experts', file, { min: 0 }) ?? 0;
  return {
    numRoutedExperts,
    numExpertsPerToken: requireInt(config, 'num_experts_per_tok', file, { min: 1, max: numRoutedExperts }),
    expertIntermediateSize,
    sharedIntermediateSize: expertIntermediateSize * numShared,
  };
}
