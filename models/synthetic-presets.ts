// config.json presets for synthetic checkpoints of every family. The DeepSeekMoE ones are small versions of
// deepseek-moe-16b (first layer dense, the rest MoE with shared experts); the vocabulary is
// the bundled 32000-token Llama/Mistral tokenizer's, with <s> = 1 and </s> = 2.

export type SyntheticSize = 'tiny' | 'bench';

/** Keys every preset shares, as configuration_deepseek.py would write them. */
const IDENTITY: Readonly<Record<string, unknown>> = {
  architectures: ['DeepseekForCausalLM'],
  model_type: 'deepseek',
};

const COMMON: Readonly<Record<string, unknown>> = {
  vocab_size: 32000,
  first_k_dense_replace: 1,
  moe_layer_freq: 1,
  n_shared_experts: 2,
  norm_topk_prob: false,
  scoring_func: 'softmax',
  aux_loss_alpha: 0.001,
  seq_aux: true,
  hidden_act: 'silu',
  initializer_range: 0.02,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  rope_scaling: null,
  attention_bias: false,
  attention_dropout: 0,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: null,
  pretraining_tp: 1,
  use_cache: true,
  torch_dtype: 'bfloat16',
};

const PRESETS: Readonly<Record<SyntheticSize, Readonly<Record<string, unknown>>>> = {
  // About 4.5M parameters, nearly all in the embeddings: loads and runs in milliseconds.
  tiny: {
    hidden_size: 64,
    intermediate_size: 128,
    moe_intermediate_size: 32,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    n_routed_experts: 8,
    num_experts_per_tok: 2,
    max_position_embeddings: 512,
  },
  // About 0.62B parameters (1.2 GB in bf16): big enough for throughput numbers to mean something.
  bench: {
    hidden_size: 1024,
    intermediate_size: 2816,
    moe_intermediate_size: 704,
    num_hidden_layers: 8,
    num_attention_heads: 16,
    num_key_value_heads: 16,
    n_routed_experts: 32,
    num_experts_per_tok: 4,
    max_position_embeddings: 4096,
  },
};

/** Families the synthetic writer covers, by model_type. */
export const SYNTHETIC_FAMILIES = ['deepseek', 'mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v2', 'deepseek_v3'] as const;
export type SyntheticFamily = (typeof SYNTHETIC_FAMILIES)[number];

/**
 * The other families' presets: the same hidden size, layers, vocabulary and tokenizer as the
 * DeepSeekMoE ones, each with its own routing shape at about the same active parameters per
 * token (bench: 12.6-13M per MoE layer against DeepSeekMoE's 4 routed + 2 shared experts of
 * 704). Expert widths are multiples of 64 so both tensor-parallel halves stay in 4-bit blocks.
 */
const LLAMA_COMMON: Readonly<Record<string, unknown>> = {
  vocab_size: 32000,
  hidden_act: 'silu',
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  rope_scaling: null,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  torch_dtype: 'bfloat16',
};

const SHAPES: Readonly<Record<SyntheticSize, Readonly<Record<string, unknown>>>> = {
  tiny: { hidden_size: 64, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 512 },
  bench: { hidden_size: 1024, num_hidden_layers: 8, num_attention_heads: 16, num_key_value_heads: 4, max_position_embeddings: 4096 },
};

type FamilyPresets = Readonly<Record<SyntheticSize, Readonly<Record<string, unknown>>>>;

const OTHER_FAMILIES: Readonly<Record<Exclude<SyntheticFamily, 'deepseek'>, FamilyPresets>> = {
  // Mixtral-8x7B's shape: 8 experts, top-2, every layer MoE.
  mixtral: {
    tiny: {
      architectures: ['MixtralForCausalLM'],
      model_type: 'mixtral',
      num_local_experts: 8,
      num_experts_per_tok: 2,
      intermediate_size: 32,
      sliding_window: null,
    },
    bench: {
      architectures: ['MixtralForCausalLM'],
      model_type: 'mixtral',
      num_local_experts: 8,
      num_experts_per_tok: 2,
      intermediate_size: 2112,
      sliding_window: null,
    },
  },
  // Qwen1.5-MoE's shape: first layer dense here (mlp_only_layers), gated shared expert.
  qwen2_moe: {
    tiny: {
      architectures: ['Qwen2MoeForCausalLM'],
      model_type: 'qwen2_moe',
      num_experts: 8,
      num_experts_per_tok: 2,
      moe_intermediate_size: 32,
      shared_expert_intermediate_size: 48,
      intermediate_size: 128,
      mlp_only_layers: [0],
      decoder_sparse_step: 1,
      norm_topk_prob: false,
      use_sliding_window: false,
    },
    bench: {
      architectures: ['Qwen2MoeForCausalLM'],
      model_type: 'qwen2_moe',
      num_experts: 32,
      num_experts_per_tok: 4,
      moe_intermediate_size: 704,
      shared_expert_intermediate_size: 1408,
      intermediate_size: 2816,
      mlp_only_layers: [0],
      decoder_sparse_step: 1,
      norm_topk_prob: false,
      use_sliding_window: false,
    },
  },
  // Qwen3-30B-A3B's shape: head_dim its own key (tiny: 32, not hidden / heads = 16), per-head q/k norm, top-8.
  qwen3_moe: {
    tiny: {
      architectures: ['Qwen3MoeForCausalLM'],
      model_type: 'qwen3_moe',
      head_dim: 32,
      num_experts: 8,
      num_experts_per_tok: 2,
      moe_intermediate_size: 32,
      intermediate_size: 128,
      mlp_only_layers: [],
      decoder_sparse_step: 1,
      norm_topk_prob: true,
      attention_bias: false,
      use_sliding_window: false,
    },
    bench: {
      architectures: ['Qwen3MoeForCausalLM'],
      model_type: 'qwen3_moe',
      head_dim: 64,
      num_experts: 32,
      num_experts_per_tok: 8,
      moe_intermediate_size: 512,
      intermediate_size: 2816,
      mlp_only_layers: [],
      decoder_sparse_step: 1,
      norm_topk_prob: true,
      attention_bias: false,
      use_sliding_window: false,
    },
  },
  // OLMoE-1B-7B's shape: q/k norm over the whole projection, top-8, no renormalisation.
  olmoe: {
    tiny: {
      architectures: ['OlmoeForCausalLM'],
      model_type: 'olmoe',
      num_experts: 8,
      num_experts_per_tok: 2,
      intermediate_size: 32,
      norm_topk_prob: false,
      clip_qkv: null,
    },
    bench: {
      architectures: ['OlmoeForCausalLM'],
      model_type: 'olmoe',
      num_experts: 32,
      num_experts_per_tok: 8,
      intermediate_size: 512,
      norm_topk_prob: false,
      clip_qkv: null,
    },
  },
  // DeepSeek-V2-Lite's shape (no q_lora_rank), group-limited greedy routing, YaRN, routed scaling.
  deepseek_v2: {
    tiny: {
      ...mla('DeepseekV2ForCausalLM', 'deepseek_v2', 128, 512),
      q_lora_rank: null,
      kv_lora_rank: 32,
      qk_nope_head_dim: 16,
      qk_rope_head_dim: 8,
      v_head_dim: 16,
      n_routed_experts: 8,
      n_shared_experts: 2,
      num_experts_per_tok: 2,
      moe_intermediate_size: 32,
      topk_method: 'group_limited_greedy',
      n_group: 4,
      topk_group: 2,
      scoring_func: 'softmax',
      norm_topk_prob: false,
      routed_scaling_factor: 2,
    },
    bench: {
      ...mla('DeepseekV2ForCausalLM', 'deepseek_v2', 2816, 4096),
      q_lora_rank: null,
      kv_lora_rank: 256,
      qk_nope_head_dim: 64,
      qk_rope_head_dim: 32,
      v_head_dim: 64,
      n_routed_experts: 32,
      n_shared_experts: 2,
      num_experts_per_tok: 4,
      moe_intermediate_size: 704,
      topk_method: 'group_limited_greedy',
      n_group: 4,
      topk_group: 2,
      scoring_func: 'softmax',
      norm_topk_prob: false,
      routed_scaling_factor: 1,
    },
  },
  // DeepSeek-V3's shape: q_lora_rank, sigmoid scoring with correction bias, noaux_tc groups.
  deepseek_v3: {
    tiny: {
      ...mla('DeepseekV3ForCausalLM', 'deepseek_v3', 128, 512),
      q_lora_rank: 24,
      kv_lora_rank: 32,
      qk_nope_head_dim: 16,
      qk_rope_head_dim: 8,
      v_head_dim: 16,
      n_routed_experts: 8,
      n_shared_experts: 1,
      num_experts_per_tok: 2,
      moe_intermediate_size: 32,
      topk_method: 'noaux_tc',
      n_group: 4,
      topk_group: 2,
      scoring_func: 'sigmoid',
      norm_topk_prob: true,
      routed_scaling_factor: 2.5,
    },
    bench: {
      ...mla('DeepseekV3ForCausalLM', 'deepseek_v3', 2816, 4096),
      q_lora_rank: 384,
      kv_lora_rank: 256,
      qk_nope_head_dim: 64,
      qk_rope_head_dim: 32,
      v_head_dim: 64,
      n_routed_experts: 32,
      n_shared_experts: 2,
      num_experts_per_tok: 4,
      moe_intermediate_size: 704,
      topk_method: 'noaux_tc',
      n_group: 4,
      topk_group: 2,
      scoring_func: 'sigmoid',
      norm_topk_prob: true,
      routed_scaling_factor: 2.5,
    },
  },
};

/** Keys both DeepSeek MLA presets share; YaRN over a short original context so tests reach the ramp. */
function mla(architecture: string, modelType: string, intermediate: number, maxPositions: number): Record<string, unknown> {
  return {
    architectures: [architecture],
    model_type: modelType,
    intermediate_size: intermediate,
    first_k_dense_replace: 1,
    moe_layer_freq: 1,
    attention_bias: false,
    max_position_embeddings: maxPositions,
    rope_scaling: {
      type: 'yarn',
      factor: 4,
      original_max_position_embeddings: maxPositions / 4,
      beta_fast: 32,
      beta_slow: 1,
      mscale: 0.707,
      mscale_all_dim: 0.707,
    },
  };
}

/** The config.json object of a preset, with `overrides` merged over it (null values kept). */
export function syntheticConfig(
  size: SyntheticSize,
  overrides: Record<string, unknown> = {},
  family: SyntheticFamily = 'deepseek',
): Record<string, unknown> {
  if (PRESETS[size] === undefined) throw new Error(`unknown synthetic size "${String(size)}" (expected tiny or bench)`);
  if (family === 'deepseek') return structuredClone({ ...IDENTITY, ...PRESETS[size], ...COMMON, ...overrides });
  const presets = OTHER_FAMILIES[family];
  if (presets === undefined) throw new Error(`unknown synthetic family "${String(family)}" (expected ${SYNTHETIC_FAMILIES.join(', ')})`);
  return structuredClone({ ...SHAPES[size], ...LLAMA_COMMON, ...presets[size], ...overrides });
}
