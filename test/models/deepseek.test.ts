import { describe, expect, it } from 'vitest';
import { expectedTensors } from '../../models/checkpoint/weight-shapes.ts';
import { ConfigError } from '../../models/errors.ts';
import { deepseek, isMoeLayer } from '../../models/families/deepseek.ts';
import { isMoe, type MoeMlpSpec } from '../../models/spec.ts';
import { syntheticConfig } from '../../models/synthetic-presets.ts';
import { thrownBy } from './helpers.ts';

const FILE = '/ckpt/config.json';
const parse = (overrides: Record<string, unknown> = {}) => deepseek.parseConfig(syntheticConfig('tiny', overrides), FILE);
const without = (key: string): Record<string, unknown> => {
  const config = syntheticConfig('tiny');
  delete config[key];
  return config;
};

/** deepseek-moe-16b-base's config.json, as published. */
const DEEPSEEK_MOE_16B = {
  architectures: ['DeepseekForCausalLM'],
  model_type: 'deepseek',
  attention_bias: false,
  bos_token_id: 100000,
  eos_token_id: 100001,
  first_k_dense_replace: 1,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 10944,
  max_position_embeddings: 4096,
  moe_intermediate_size: 1408,
  moe_layer_freq: 1,
  n_routed_experts: 64,
  n_shared_experts: 2,
  norm_topk_prob: false,
  num_attention_heads: 16,
  num_experts_per_tok: 6,
  num_hidden_layers: 28,
  num_key_value_heads: 16,
  pretraining_tp: 1,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 10000,
  scoring_func: 'softmax',
  aux_loss_alpha: 0.001,
  seq_aux: true,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 102400,
};

function expectConfigError(config: Record<string, unknown>, key: string, detail?: RegExp): void {
  const error = thrownBy(() => deepseek.parseConfig(config, FILE));
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).key).toBe(key);
  expect(error.message).toContain(FILE);
  expect(error.message).toContain(`"${key}"`);
  if (detail !== undefined) expect(error.message).toMatch(detail);
}

describe('deepseek parseConfig', () => {
  it('parses deepseek-moe-16b', () => {
    const spec = deepseek.parseConfig(DEEPSEEK_MOE_16B, FILE);
    expect(spec).toMatchObject({
      modelType: 'deepseek',
      hiddenSize: 2048,
      numLayers: 28,
      numHeads: 16,
      numKvHeads: 16,
      headDim: 128,
      vocabSize: 102400,
      rmsNormEps: 1e-6,
      maxPositions: 4096,
      tieWordEmbeddings: false,
      attentionBias: false,
      bosTokenId: 100000,
      eosTokenIds: [100001],
      rope: { theta: 10000, rotaryDim: 128, scaling: null },
    });
    expect(spec.mlp[0]).toEqual({ kind: 'dense', intermediateSize: 10944 });
    expect(spec.mlp.slice(1).every(isMoe)).toBe(true);
    expect(spec.mlp[1]).toEqual({
      kind: 'moe',
      numRoutedExperts: 64,
      numExpertsPerToken: 6,
      expertIntermediateSize: 1408,
      sharedIntermediateSize: 2816,
      scoringFunc: 'softmax',
      normTopkProb: false,
      routedScalingFactor: 1,
    });
  });

  it('applies configuration_deepseek.py defaults to optional keys', () => {
    const config: Record<string, unknown> = {
      model_type: 'deepseek',
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      vocab_size: 100,
    };
    const spec = deepseek.parseConfig(config, FILE);
    expect(spec).toMatchObject({
      numKvHeads: 4,
      rmsNormEps: 1e-6,
      maxPositions: 2048,
      tieWordEmbeddings: false,
      bosTokenId: 100000,
      eosTokenIds: [100001],
      rope: { theta: 10000, scaling: null },
    });
    expect(spec.mlp).toEqual([
      { kind: 'dense', intermediateSize: 128 },
      { kind: 'dense', intermediateSize: 128 },
    ]);
  });

  it.each([
    [{ first_k_dense_replace: 0, moe_layer_freq: 1, num_hidden_layers: 3 }, [true, true, true]],
    [{ first_k_dense_replace: 1, moe_layer_freq: 1, num_hidden_layers: 3 }, [false, true, true]],
    [{ first_k_dense_replace: 1, moe_layer_freq: 2, num_hidden_layers: 6 }, [false, false, true, false, true, false]],
    [{ first_k_dense_replace: 3, moe_layer_freq: 3, num_hidden_layers: 7 }, [false, false, false, true, false, false, true]],
    [{ n_routed_experts: null, num_hidden_layers: 3 }, [false, false, false]],
    [{ first_k_dense_replace: 5, num_hidden_layers: 3 }, [false, false, false]],
  ])('layer kinds for %j', (overrides, moeLayers) => {
    const spec = parse(overrides);
    expect(spec.mlp.map(isMoe)).toEqual(moeLayers);
    for (const mlp of spec.mlp) if (!isMoe(mlp)) expect(mlp.intermediateSize).toBe(128);
    const firstK = (overrides as { first_k_dense_replace?: number }).first_k_dense_replace ?? 1;
    const freq = (overrides as { moe_layer_freq?: number }).moe_layer_freq ?? 1;
    if ('n_routed_experts' in overrides) return;
    expect(moeLayers).toEqual(moeLayers.map((_, i) => isMoeLayer(i, firstK, freq)));
  });

  it('sizes the fused shared expert as moe_intermediate_size * n_shared_experts', () => {
    const shared = (n: unknown) => (parse({ n_shared_experts: n }).mlp[1] as MoeMlpSpec).sharedIntermediateSize;
    expect(shared(2)).toBe(64);
    expect(shared(1)).toBe(32);
    expect(shared(0)).toBe(0);
    expect(shared(null)).toBe(0);
  });

  it('keeps the renormalisation rule of MoEGate: never with a single expert per token', () => {
    expect(parse({ norm_topk_prob: true, num_experts_per_tok: 1 }).mlp[1]).toMatchObject({ normTopkProb: false });
    expect(parse({ norm_topk_prob: true, num_experts_per_tok: 2 }).mlp[1]).toMatchObject({ normTopkProb: true });
    expect(parse({ norm_topk_prob: false, num_experts_per_tok: 2 }).mlp[1]).toMatchObject({ normTopkProb: false });
  });

  it('reads routing options, GQA and token ids', () => {
    const spec = parse({ norm_topk_prob: true, num_experts_per_tok: 3, num_key_value_heads: 4, eos_token_id: [2, 7] });
    expect(spec.mlp[1]).toMatchObject({ normTopkProb: true, numExpertsPerToken: 3 });
    expect(spec.numKvHeads).toBe(4);
    expect(spec.eosTokenIds).toEqual([2, 7]);
    expect(parse({ bos_token_id: null, eos_token_id: null })).toMatchObject({ bosTokenId: null, eosTokenIds: [] });
    expect(parse({ num_key_value_heads: null }).numKvHeads).toBe(4);
  });

  it('parses linear and dynamic rope scaling', () => {
    expect(parse({ rope_scaling: { type: 'linear', factor: 4 } }).rope.scaling).toEqual({ type: 'linear', factor: 4 });
    expect(parse({ rope_scaling: { type: 'dynamic', factor: 2 }, max_position_embeddings: 1024 }).rope.scaling).toEqual({
      type: 'dynamic',
      factor: 2,
      originalMaxPositions: 1024,
    });
    expect(parse({ rope_scaling: { rope_type: 'linear', factor: 2 } }).rope.scaling).toEqual({ type: 'linear', factor: 2 });
  });

  it.each([
    ['hidden_size', without('hidden_size'), /missing/],
    ['hidden_size', syntheticConfig('tiny', { hidden_size: '64' }), /integer.*"64"/],
    ['num_hidden_layers', syntheticConfig('tiny', { num_hidden_layers: 0 }), />= 1/],
    ['vocab_size', without('vocab_size'), /integer/],
    ['intermediate_size', without('intermediate_size'), /integer/],
    ['moe_intermediate_size', without('moe_intermediate_size'), /integer/],
    ['num_experts_per_tok', without('num_experts_per_tok'), /integer/],
    ['num_experts_per_tok', syntheticConfig('tiny', { num_experts_per_tok: 9 }), /<= 8/],
    ['n_routed_experts', syntheticConfig('tiny', { n_routed_experts: 0 }), />= 1/],
    ['norm_topk_prob', syntheticConfig('tiny', { norm_topk_prob: 'yes' }), /true or false/],
    ['scoring_func', syntheticConfig('tiny', { scoring_func: 'sigmoid' }), /"softmax".*"sigmoid"/],
    ['topk_method', syntheticConfig('tiny', { topk_method: 'group_limited_greedy' }), /"greedy"/],
    ['hidden_act', syntheticConfig('tiny', { hidden_act: 'gelu' }), /"silu"/],
    ['rope_scaling.type', syntheticConfig('tiny', { rope_scaling: { type: 'yarn', factor: 4 } }), /"linear" or "dynamic".*"yarn"/],
    ['rope_scaling.factor', syntheticConfig('tiny', { rope_scaling: { type: 'linear' } }), /number/],
    ['rope_scaling', syntheticConfig('tiny', { rope_scaling: 'linear' }), /object/],
    ['rope_theta', syntheticConfig('tiny', { rope_theta: -1 }), /> 0/],
    ['model_type', syntheticConfig('tiny', { model_type: 'deepseek_v2' }), /"deepseek".*"deepseek_v2"/],
    ['num_attention_heads', syntheticConfig('tiny', { num_attention_heads: 3 }), /divide hidden_size/],
    ['num_key_value_heads', syntheticConfig('tiny', { num_key_value_heads: 3 }), /divide num_attention_heads/],
    ['attention_bias', syntheticConfig('tiny', { attention_bias: true }), /o_proj/],
    ['eos_token_id', syntheticConfig('tiny', { eos_token_id: ['x'] }), /integer/],
    ['first_k_dense_replace', syntheticConfig('tiny', { first_k_dense_replace: -1 }), />= 0/],
    ['moe_layer_freq', syntheticConfig('tiny', { moe_layer_freq: 0 }), />= 1/],
  ])('ConfigError for %s', (key, config, detail) => expectConfigError(config, key, detail));
});

describe('deepseek weightNames', () => {
  it('names the Hugging Face tensors of each layer kind', () => {
    const spec = parse();
    const names = deepseek.weightNames(spec);
    expect(names.embedTokens).toBe('model.embed_tokens.weight');
    expect(names.finalNorm).toBe('model.norm.weight');
    expect(names.lmHead).toBe('lm_head.weight');
    const [dense, moe] = names.layers;
    expect(dense.inputNorm).toBe('model.layers.0.input_layernorm.weight');
    expect(dense.postAttentionNorm).toBe('model.layers.0.post_attention_layernorm.weight');
    expect(dense.attention).toEqual({
      q: 'model.layers.0.self_attn.q_proj.weight',
      k: 'model.layers.0.self_attn.k_proj.weight',
      v: 'model.layers.0.self_attn.v_proj.weight',
      o: 'model.layers.0.self_attn.o_proj.weight',
    });
    expect(dense.mlp).toEqual({
      kind: 'dense',
      mlp: {
        gate: 'model.layers.0.mlp.gate_proj.weight',
        up: 'model.layers.0.mlp.up_proj.weight',
        down: 'model.layers.0.mlp.down_proj.weight',
      },
    });
    if (moe.mlp.kind !== 'moe') throw new Error('layer 1 should be MoE');
    expect(moe.mlp.router).toBe('model.layers.1.mlp.gate.weight');
    expect(moe.mlp.experts).toHaveLength(8);
    expect(moe.mlp.experts[7]).toEqual({
      gate: 'model.layers.1.mlp.experts.7.gate_proj.weight',
      up: 'model.layers.1.mlp.experts.7.up_proj.weight',
      down: 'model.layers.1.mlp.experts.7.down_proj.weight',
    });
    expect(moe.mlp.shared?.down).toBe('model.layers.1.mlp.shared_experts.down_proj.weight');
  });

  it('ties the LM head to the embeddings and drops absent shared experts', () => {
    const spec = parse({ tie_word_embeddings: true, n_shared_experts: null });
    const names = deepseek.weightNames(spec);
    expect(names.lmHead).toBe(names.embedTokens);
    const moe = names.layers[1].mlp;
    expect(moe.kind === 'moe' && moe.shared).toBeFalsy();
    const tensors = expectedTensors(spec, names);
    expect(tensors.filter((t) => t.name === 'model.embed_tokens.weight')).toHaveLength(1);
    expect(tensors.some((t) => t.name.includes('shared_experts') || t.name === 'lm_head.weight')).toBe(false);
  });

  it('gives every tensor its [out, in] shape', () => {
    const spec = parse({ num_key_value_heads: 2 });
    const shapes = new Map(expectedTensors(spec, deepseek.weightNames(spec)).map((t) => [t.name, t.shape]));
    expect(shapes.get('model.embed_tokens.weight')).toEqual([32000, 64]);
    expect(shapes.get('lm_head.weight')).toEqual([32000, 64]);
    expect(shapes.get('model.layers.0.self_attn.q_proj.weight')).toEqual([64, 64]);
    expect(shapes.get('model.layers.0.self_attn.k_proj.weight')).toEqual([32, 64]);
    expect(shapes.get('model.layers.0.self_attn.o_proj.weight')).toEqual([64, 64]);
    expect(shapes.get('model.layers.0.mlp.down_proj.weight')).toEqual([64, 128]);
    expect(shapes.get('model.layers.2.mlp.gate.weight')).toEqual([8, 64]);
    expect(shapes.get('model.layers.2.mlp.experts.3.up_proj.weight')).toEqual([32, 64]);
    expect(shapes.get('model.layers.2.mlp.shared_experts.gate_proj.weight')).toEqual([64, 64]);
    expect(shapes.get('model.layers.2.mlp.shared_experts.down_proj.weight')).toEqual([64, 64]);
    expect(shapes.get('model.norm.weight')).toEqual([64]);
    // 1 embed + 3 layers x (2 norms + 4 attn) + dense 3 + 2 MoE x (router + 8x3 + shared 3) + norm + head
    expect(shapes.size).toBe(1 + 18 + 3 + 2 * 28 + 2);
  });
});
