// Checkpoint and config.json checks of the Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE families:
// a missing or an extra tensor fails the compile with an error naming the tensor and the
// file; config rules (sparse layers, head_dim, unsupported options) and tensor names as
// transformers saves them.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../models/compile.ts';
import { CheckpointError, ConfigError } from '../../models/errors.ts';
import { familyFor } from '../../models/registry.ts';
import { ensureSyntheticCheckpoint, syntheticConfig, type SyntheticFamily } from '../../models/synthetic.ts';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { expectedTensors } from '../../models/checkpoint/weight-shapes.ts';
import { removeTempDirs, renameTensors, rewriteTensors, tempDir, thrownBy } from './helpers.ts';

afterAll(removeTempDirs);

function tiny(family: SyntheticFamily, fusedExperts = false): string {
  return ensureSyntheticCheckpoint({ outDir: join(tempDir(), 'model'), size: 'tiny', seed: 5, family, fusedExperts });
}

const missing: Array<[SyntheticFamily, string]> = [
  ['mixtral', 'model.layers.1.block_sparse_moe.experts.3.w3.weight'],
  ['qwen2_moe', 'model.layers.1.mlp.shared_expert_gate.weight'],
  ['qwen3_moe', 'model.layers.2.self_attn.q_norm.weight'],
  ['olmoe', 'model.layers.0.self_attn.k_norm.weight'],
  ['deepseek_v2', 'model.layers.1.self_attn.kv_b_proj.weight'],
  ['deepseek_v3', 'model.layers.2.mlp.gate.e_score_correction_bias'],
];

describe.each(missing)('%s checkpoint errors', (family, tensor) => {
  it(`a missing tensor (${tensor}) names the tensor and the file`, () => {
    const dir = tiny(family);
    rewriteTensors(dir, (ts) => ts.filter((t) => t.name !== tensor));
    const err = thrownBy(() => compileModel({ modelDir: dir, weights: 'fp32', cacheDir: tempDir() }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain(tensor);
    expect(err.message).toContain(join(dir, 'model.safetensors'));
  });

  it('an extra tensor names the tensor and the file', () => {
    const dir = tiny(family);
    const extra = 'model.layers.3.mlp.gate.weight';
    rewriteTensors(dir, (ts) => [...ts, { name: extra, dtype: 'F32', shape: [8, 64] }]);
    const err = thrownBy(() => compileModel({ modelDir: dir, weights: 'fp32', cacheDir: tempDir() }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain(extra);
    expect(err.message).toContain(join(dir, 'model.safetensors'));
    expect(err.message).toMatch(/not part of a "[a-z0-9_]+" model/);
  });
});

describe('DeepSeek-V3 multi-token-prediction layer', () => {
  it('model.layers.{num_hidden_layers}.* is ignored when num_nextn_predict_layers says so, refused otherwise', () => {
    const mtp = 'model.layers.3.eh_proj.weight';
    const withMtp = ensureSyntheticCheckpoint({
      outDir: join(tempDir(), 'model'),
      size: 'tiny',
      seed: 5,
      family: 'deepseek_v3',
      configOverrides: { num_nextn_predict_layers: 1 },
    });
    rewriteTensors(withMtp, (ts) => [...ts, { name: mtp, dtype: 'F32', shape: [64, 128] }]);
    expect(compileModel({ modelDir: withMtp, weights: 'fp32', cacheDir: tempDir() }).manifest.layers).toHaveLength(3);
    const without = tiny('deepseek_v3');
    rewriteTensors(without, (ts) => [...ts, { name: mtp, dtype: 'F32', shape: [64, 128] }]);
    expect(thrownBy(() => compileModel({ modelDir: without, weights: 'fp32', cacheDir: tempDir() })).message).toContain(mtp);
  });
});

describe('fused 3-D experts', () => {
  it('a fused checkpoint holds gate_up_proj [E, 2I, H] and down_proj [E, H, I] instead of per-expert tensors', () => {
    const dir = tiny('qwen3_moe', true);
    const reader = CheckpointReader.open(dir);
    try {
      expect(reader.info('model.layers.0.mlp.experts.gate_up_proj').shape).toEqual([8, 64, 64]);
      expect(reader.info('model.layers.0.mlp.experts.down_proj').shape).toEqual([8, 64, 32]);
      expect(reader.has('model.layers.0.mlp.experts.0.gate_proj.weight')).toBe(false);
    } finally {
      reader.close();
    }
  });

  it('Mixtral in the newer transformers spelling (mlp., fused experts) compiles like block_sparse_moe per expert', () => {
    const dir = tiny('mixtral', true);
    renameTensors(dir, '.block_sparse_moe.', '.mlp.');
    const reader = CheckpointReader.open(dir);
    try {
      expect(reader.has('model.layers.0.mlp.experts.gate_up_proj')).toBe(true);
      expect(reader.has('model.layers.0.mlp.gate.weight')).toBe(true);
      expect(reader.names().some((n) => n.includes('block_sparse_moe'))).toBe(false);
    } finally {
      reader.close();
    }
    expect(compileModel({ modelDir: dir, weights: 'fp32', cacheDir: tempDir() }).manifest.layers).toHaveLength(3);
  });

  it('a fused checkpoint that also keeps per-expert tensors is refused (they would be unused)', () => {
    const dir = tiny('olmoe', true);
    const stray = 'model.layers.0.mlp.experts.0.up_proj.weight';
    rewriteTensors(dir, (ts) => [...ts, { name: stray, dtype: 'F32', shape: [32, 64] }]);
    const err = thrownBy(() => compileModel({ modelDir: dir, weights: 'fp32', cacheDir: tempDir() }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain(stray);
  });
});

function parse(family: SyntheticFamily, overrides: Record<string, unknown>) {
  const config = syntheticConfig('tiny', overrides, family);
  return familyFor(family, '/m/config.json').parseConfig(config, '/m/config.json');
}

describe('family configs', () => {
  it('qwen2_moe: MoE iff not in mlp_only_layers and (layer + 1) % decoder_sparse_step == 0', () => {
    const spec = parse('qwen2_moe', { num_hidden_layers: 6, mlp_only_layers: [3], decoder_sparse_step: 2 });
    expect(spec.mlp.map((m) => m.kind)).toEqual(['dense', 'moe', 'dense', 'dense', 'dense', 'moe']);
    expect(spec.mlp[1]).toMatchObject({ sharedIntermediateSize: 48, sharedExpertGate: true, normTopkProb: false });
    expect(spec.attentionBias).toBe(true);
    expect(parse('qwen2_moe', { num_experts: 0 }).mlp.every((m) => m.kind === 'dense')).toBe(true);
  });

  it('qwen3_moe: explicit head_dim and per-head q/k norm; olmoe: q/k norm over the projection', () => {
    const q3 = parse('qwen3_moe', {});
    expect(q3).toMatchObject({ headDim: 32, hiddenSize: 64, numHeads: 4, qkNorm: 'head' });
    const names = familyFor('qwen3_moe', 'c').weightNames(q3);
    const shapes = new Map(expectedTensors(q3, names).map((t) => [t.name, t.shape]));
    expect(shapes.get('model.layers.0.self_attn.q_proj.weight')).toEqual([128, 64]);
    expect(shapes.get('model.layers.0.self_attn.q_norm.weight')).toEqual([32]);
    const ol = parse('olmoe', {});
    const olShapes = new Map(expectedTensors(ol, familyFor('olmoe', 'c').weightNames(ol)).map((t) => [t.name, t.shape]));
    expect(olShapes.get('model.layers.0.self_attn.q_norm.weight')).toEqual([64]);
    expect(olShapes.get('model.layers.0.self_attn.k_norm.weight')).toEqual([32]);
  });

  it('mixtral: every layer MoE, always renormalised, expert width intermediate_size', () => {
    const spec = parse('mixtral', { num_experts_per_tok: 1 });
    expect(spec.mlp.every((m) => m.kind === 'moe' && m.normTopkProb && m.expertIntermediateSize === 32 && m.numExpertsPerToken === 1)).toBe(
      true,
    );
    expect(spec.rope.theta).toBe(10000);
    expect(parse('mixtral', { rope_theta: undefined }).rope.theta).toBe(1e6);
  });

  it('deepseek_v2/v3: MLA shapes, q_lora_rank names, YaRN softmax scale, V2 scales only without renorm', () => {
    const v2 = parse('deepseek_v2', {});
    expect(v2.mla).toMatchObject({ kvLoraRank: 32, qLoraRank: null, qkNopeHeadDim: 16, qkRopeHeadDim: 8, vHeadDim: 16 });
    // mscale_all_dim 0.707 at factor 4: (0.1 * 0.707 * ln 4 + 1)^2 / sqrt(24)
    expect(v2.mla?.softmaxScale).toBeCloseTo((0.1 * 0.707 * Math.log(4) + 1) ** 2 / Math.sqrt(24), 12);
    expect(v2.mlp.map((m) => m.kind)).toEqual(['dense', 'moe', 'moe']);
    expect(v2.mlp[1]).toMatchObject({
      routedScalingFactor: 2,
      normTopkProb: false,
      grouping: { numGroups: 4, topkGroups: 2, groupScore: 'max' },
    });
    expect(parse('deepseek_v2', { norm_topk_prob: true }).mlp[1]).toMatchObject({ routedScalingFactor: 1, normTopkProb: true });
    const v3 = parse('deepseek_v3', {});
    expect(v3.mlp[1]).toMatchObject({
      scoringFunc: 'sigmoid',
      correctionBias: true,
      routedScalingFactor: 2.5,
      normTopkProb: true,
      grouping: { groupScore: 'top2-sum' },
    });
    const names = new Map(expectedTensors(v3, familyFor('deepseek_v3', 'c').weightNames(v3)).map((t) => [t.name, t.shape]));
    expect(names.get('model.layers.0.self_attn.q_a_proj.weight')).toEqual([24, 64]);
    expect(names.get('model.layers.0.self_attn.q_b_proj.weight')).toEqual([4 * 24, 24]);
    expect(names.get('model.layers.0.self_attn.kv_a_proj_with_mqa.weight')).toEqual([40, 64]);
    expect(names.get('model.layers.0.self_attn.kv_b_proj.weight')).toEqual([4 * 32, 32]);
    expect(names.get('model.layers.1.mlp.gate.e_score_correction_bias')).toEqual([8]);
    expect(names.has('model.layers.0.self_attn.q_proj.weight')).toBe(false);
  });

  it.each([
    ['deepseek_v2', { topk_method: 'noaux_tc' }, 'topk_method'],
    ['deepseek_v3', { scoring_func: 'softmax' }, 'scoring_func'],
    ['deepseek_v3', { rope_interleave: false }, 'rope_interleave'],
    ['deepseek_v3', { quantization_config: { quant_method: 'fp8', weight_block_size: [128, 128] } }, 'quantization_config'],
    ['mixtral', { quantization_config: { quant_method: 'gptq', bits: 4 } }, 'quantization_config'],
    ['deepseek_v3', { n_group: 3 }, 'n_group'],
    ['deepseek_v2', { topk_group: 1, num_experts_per_tok: 3 }, 'topk_group'],
    ['mixtral', { sliding_window: 4096 }, 'sliding_window'],
    ['qwen2_moe', { use_sliding_window: true }, 'use_sliding_window'],
    ['olmoe', { clip_qkv: 8 }, 'clip_qkv'],
    ['qwen3_moe', { attention_bias: true }, 'attention_bias'],
    ['mixtral', { rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'rope_scaling.rope_type'],
    ['qwen2_moe', { shared_expert_intermediate_size: undefined }, 'shared_expert_intermediate_size'],
    ['olmoe', { num_experts_per_tok: 9 }, 'num_experts_per_tok'],
  ] as Array<[SyntheticFamily, Record<string, unknown>, string]>)('%s: %j is refused naming %s', (family, overrides, key) => {
    const err = thrownBy(() => parse(family, overrides));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe(key);
  });
});
