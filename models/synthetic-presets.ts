// config.json presets for synthetic DeepSeekMoE checkpoints. Shapes are small versions of
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

/** The config.json object of a preset, with `overrides` merged over it (null values kept). */
export function syntheticConfig(size: SyntheticSize, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const preset = PRESETS[size];
  if (preset === undefined) throw new Error(`unknown synthetic size "${String(size)}" (expected tiny or bench)`);
  return structuredClone({ ...IDENTITY, ...preset, ...COMMON, ...overrides });
}
