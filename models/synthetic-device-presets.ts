// Synthetic model shapes for the device plan. CUDA's QMoE needs hidden and expert sizes that
// are multiples of 64 (graphs/cuda-constraints.ts); the tiny presets' experts are 32 wide, so
// tests of the CUDA graphs use these overrides of them. The DeepSeek-V2-Lite shape is what the
// GPU check decodes at int4, with as many layers as the time allows (the real model has 27).
import type { SyntheticFamily } from './synthetic-presets.ts';

/** Overrides of a family's tiny preset whose experts (and shared experts) are 64 wide. */
export function cudaShapedOverrides(family: SyntheticFamily): Record<string, unknown> {
  switch (family) {
    case 'mixtral':
    case 'olmoe':
      return { intermediate_size: 64 };
    case 'qwen2_moe':
      return { moe_intermediate_size: 64, shared_expert_intermediate_size: 64 };
    default:
      return { moe_intermediate_size: 64 };
  }
}

export interface V2LiteShapeOptions {
  /** Decoder layers (the real model: 27, the first dense). */
  layers: number;
  /** Vocabulary (the real model: 102400; the synthetic tokenizer has 32000). */
  vocabSize?: number;
  maxPositions?: number;
}

/**
 * config.json overrides of the deepseek_v2 preset giving DeepSeek-V2-Lite's per-layer shape:
 * hidden 2048, 16 heads of MLA (kv_lora_rank 512, no q_lora_rank, nope 128, rope 64, v 128),
 * 64 routed experts of 1408, top-6, 2 shared, greedy softmax routing, dense first layer of 10944.
 */
export function deepseekV2LiteOverrides(opts: V2LiteShapeOptions): Record<string, unknown> {
  const maxPositions = opts.maxPositions ?? 4096;
  return {
    hidden_size: 2048,
    intermediate_size: 10944,
    num_hidden_layers: opts.layers,
    num_attention_heads: 16,
    num_key_value_heads: 16,
    q_lora_rank: null,
    kv_lora_rank: 512,
    qk_nope_head_dim: 128,
    qk_rope_head_dim: 64,
    v_head_dim: 128,
    n_routed_experts: 64,
    n_shared_experts: 2,
    num_experts_per_tok: 6,
    moe_intermediate_size: 1408,
    first_k_dense_replace: 1,
    topk_method: 'greedy',
    n_group: 1,
    topk_group: 1,
    scoring_func: 'softmax',
    norm_topk_prob: false,
    routed_scaling_factor: 1,
    vocab_size: opts.vocabSize ?? 32000,
    max_position_embeddings: maxPositions,
    rope_scaling: {
      type: 'yarn',
      factor: 40,
      original_max_position_embeddings: 4096,
      beta_fast: 32,
      beta_slow: 1,
      mscale: 0.707,
      mscale_all_dim: 0.707,
    },
  };
}
