// The GGUF writer on real tiny checkpoints, read back with the project's GGUF reader and
// compared tensor by tensor with what moe-server's checkpoint reader loads.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeInt4 } from '../../graphs/ops/quantize.ts';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { loadModelSpec } from '../../models/registry.ts';
import type { GgufValue } from '../../bench/gguf/gguf-format.ts';
import { readGguf, readTensorBytes } from '../../bench/gguf/gguf-reader.ts';
import { permuteRopeRows } from '../../bench/gguf/gguf-tensors.ts';
import { UnsupportedForLlamaCpp } from '../../bench/gguf/llama-arch.ts';
import { q4_0Codes, Q4_0_BLOCK_BYTES } from '../../bench/gguf/q4-0.ts';
import { tokenizerMetadata } from '../../bench/gguf/tokenizer-metadata.ts';
import { writeCheckpointGguf } from '../../bench/gguf/write-gguf.ts';
import { type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const models: TinyModel[] = [];
afterAll(() => models.forEach((m) => m.remove()));

function tiny(family: 'deepseek' | 'olmoe' | 'qwen2_moe', overrides: Record<string, unknown> = {}): TinyModel {
  const m = writeTinyModel(overrides, 1, family);
  models.push(m);
  return m;
}

/** Bitwise equality of two float arrays (vitest's deep equality is slow on millions of values). */
function expectSame(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  expect(
    Buffer.compare(
      Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength),
      Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
    ),
  ).toBe(0);
}

const scalar = (v: GgufValue | undefined): unknown => (v && v.type !== 'array' ? v.value : undefined);

function tensorValues(file: string, name: string): Float32Array {
  const t = readGguf(file).tensors.find((x) => x.name === name)!;
  const n = t.dims.reduce((a, b) => a * b, 1);
  return new Float32Array(readTensorBytes(file, t.offset, 4 * n).buffer);
}

describe('GGUF of a DeepSeekMoE checkpoint', () => {
  const model = tiny('deepseek');
  const { spec } = loadModelSpec(model.dir);
  const f32 = writeCheckpointGguf({ modelDir: model.dir, outFile: join(model.cacheDir, 'f32.gguf'), weights: 'f32' }).file;
  const q4 = writeCheckpointGguf({ modelDir: model.dir, outFile: join(model.cacheDir, 'q4.gguf'), weights: 'q4_0' }).file;
  const reader = CheckpointReader.open(model.dir);
  afterAll(() => reader.close());
  const h = spec.hiddenSize;

  it('describes the model with llama.cpp\'s "deepseek" keys', () => {
    const md = readGguf(f32).metadata;
    expect(scalar(md.get('general.architecture'))).toBe('deepseek');
    expect(scalar(md.get('general.file_type'))).toBe(0);
    expect(scalar(readGguf(q4).metadata.get('general.file_type'))).toBe(2);
    expect(scalar(md.get('deepseek.block_count'))).toBe(spec.numLayers);
    expect(scalar(md.get('deepseek.attention.head_count_kv'))).toBe(spec.numKvHeads);
    expect(scalar(md.get('deepseek.leading_dense_block_count'))).toBe(1);
    expect(scalar(md.get('deepseek.expert_count'))).toBe(8);
    expect(scalar(md.get('deepseek.expert_shared_count'))).toBe(2);
    expect(scalar(md.get('deepseek.rope.dimension_count'))).toBe(spec.headDim);
  });

  it('carries the Llama-2 vocabulary as llama.cpp\'s "llama" tokenizer', () => {
    const md = readGguf(f32).metadata;
    expect(scalar(md.get('tokenizer.ggml.model'))).toBe('llama');
    const tokens = md.get('tokenizer.ggml.tokens');
    const types = md.get('tokenizer.ggml.token_type');
    if (tokens?.type !== 'array' || types?.type !== 'array') throw new Error('token arrays missing');
    expect(tokens.value.length).toBe(32000);
    expect(Array.from(tokens.value as ArrayLike<unknown>).slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(Array.from(types.value as ArrayLike<number>).slice(0, 4)).toEqual([2, 3, 3, 6]);
    expect(scalar(md.get('tokenizer.ggml.bos_token_id'))).toBe(1);
    expect(scalar(md.get('tokenizer.ggml.eos_token_id'))).toBe(2);
    expect(typeof scalar(md.get('tokenizer.chat_template'))).toBe('string');
  });

  it('holds the checkpoint values: q/k rows permuted for adjacent-pair rope, experts stacked', () => {
    const q = reader.readFloat32('model.layers.1.self_attn.q_proj.weight');
    expectSame(tensorValues(f32, 'blk.1.attn_q.weight'), permuteRopeRows(q, spec.numHeads, h));
    expectSame(tensorValues(f32, 'blk.1.attn_v.weight'), reader.readFloat32('model.layers.1.self_attn.v_proj.weight'));
    const up = tensorValues(f32, 'blk.2.ffn_up_exps.weight');
    const expert5 = reader.readFloat32('model.layers.2.mlp.experts.5.up_proj.weight');
    expectSame(up.subarray(5 * expert5.length, 6 * expert5.length), expert5);
    expectSame(tensorValues(f32, 'blk.0.ffn_down.weight'), reader.readFloat32('model.layers.0.mlp.down_proj.weight'));
    expectSame(tensorValues(f32, 'token_embd.weight'), reader.readFloat32('model.embed_tokens.weight'));
    const dims = Object.fromEntries(readGguf(f32).tensors.map((t) => [t.name, t.dims]));
    expect(dims['blk.2.ffn_gate_exps.weight']).toEqual([h, 32, 8]);
    expect(dims['blk.2.ffn_down_exps.weight']).toEqual([32, h, 8]);
    expect(dims['blk.2.ffn_gate_shexp.weight']).toEqual([h, 64]);
    expect(dims['output.weight']).toEqual([h, 32000]);
  });

  it('writes Q4_0 exactly where moe-server runs int4, with its codes', () => {
    const types = Object.fromEntries(readGguf(q4).tensors.map((t) => [t.name, t.type]));
    expect(types['token_embd.weight']).toBe('f32');
    expect(types['blk.1.ffn_gate_inp.weight']).toBe('f32');
    expect(types['blk.1.attn_norm.weight']).toBe('f32');
    for (const name of [
      'output.weight',
      'blk.0.ffn_up.weight',
      'blk.1.attn_k.weight',
      'blk.1.ffn_down_exps.weight',
      'blk.1.ffn_up_shexp.weight',
    ])
      expect(types[name]).toBe('q4_0');
    const k = permuteRopeRows(reader.readFloat32('model.layers.1.self_attn.k_proj.weight'), spec.numKvHeads, h);
    const rows = k.length / h;
    const t = readGguf(q4).tensors.find((x) => x.name === 'blk.1.attn_k.weight')!;
    const codes = q4_0Codes(readTensorBytes(q4, t.offset, (k.length / 32) * Q4_0_BLOCK_BYTES));
    const int4 = quantizeInt4(k, rows, h, 32);
    expect(Array.from(codes.subarray(0, 64))).toEqual(Array.from({ length: 64 }, (_, i) => (int4.packed[i >> 1] >> ((i & 1) * 4)) & 15));
  });
});

describe('GGUF of an OLMoE checkpoint', () => {
  it("keeps Hugging Face q/k rows (llama.cpp's olmoe rope is rotate-half) and writes the q/k norms", () => {
    const model = tiny('olmoe', { num_key_value_heads: 4 });
    const file = writeCheckpointGguf({ modelDir: model.dir, outFile: join(model.cacheDir, 'f32.gguf'), weights: 'f32' }).file;
    const reader = CheckpointReader.open(model.dir);
    try {
      expect(scalar(readGguf(file).metadata.get('general.architecture'))).toBe('olmoe');
      expectSame(tensorValues(file, 'blk.0.attn_q.weight'), reader.readFloat32('model.layers.0.self_attn.q_proj.weight'));
      expectSame(tensorValues(file, 'blk.0.attn_k_norm.weight'), reader.readFloat32('model.layers.0.self_attn.k_norm.weight'));
    } finally {
      reader.close();
    }
  });

  it('refuses what llama.cpp would compute differently', () => {
    const gqa = tiny('olmoe'); // the tiny preset has 2 kv heads for 4 heads
    expect(() => writeCheckpointGguf({ modelDir: gqa.dir, outFile: join(gqa.cacheDir, 'x.gguf'), weights: 'f32' })).toThrow(
      UnsupportedForLlamaCpp,
    );
    const qwen = tiny('qwen2_moe');
    expect(() => writeCheckpointGguf({ modelDir: qwen.dir, outFile: join(qwen.cacheDir, 'x.gguf'), weights: 'f32' })).toThrow(
      /not written/,
    );
  });
});

describe('tokenizer metadata', () => {
  it('writes a byte-level BPE vocabulary as "gpt2" with merges, padded to the model vocabulary', () => {
    const model = tiny('olmoe', { num_key_value_heads: 4 });
    const dir = join(model.cacheDir, 'bpe');
    mkdirSync(dir, { recursive: true });
    const tokenizer = {
      model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: [['a', 'b']] },
      added_tokens: [{ id: 3, content: '<|endoftext|>', special: true }],
    };
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
    const spec = { ...loadModelSpec(model.dir).spec, vocabSize: 6, bosTokenId: null, eosTokenIds: [3] };
    const md = new Map(tokenizerMetadata(dir, spec));
    expect(scalar(md.get('tokenizer.ggml.model'))).toBe('gpt2');
    expect(scalar(md.get('tokenizer.ggml.pre'))).toBe('olmo');
    expect(md.get('tokenizer.ggml.tokens')).toEqual({
      type: 'array',
      itemType: 'string',
      value: ['a', 'b', 'ab', '<|endoftext|>', '[PAD4]', '[PAD5]'],
    });
    expect(Array.from((md.get('tokenizer.ggml.token_type') as { value: ArrayLike<number> }).value)).toEqual([1, 1, 1, 3, 5, 5]);
    expect(md.get('tokenizer.ggml.merges')).toEqual({ type: 'array', itemType: 'string', value: ['a b'] });
    expect(md.has('tokenizer.ggml.bos_token_id')).toBe(false);
    expect(scalar(md.get('tokenizer.ggml.eos_token_id'))).toBe(3);
  });
});

describe('permuteRopeRows', () => {
  it("interleaves each head's two halves: rows (i, i + d/2) become (2i, 2i + 1)", () => {
    const rows = Float32Array.from({ length: 8 }, (_, i) => i); // 2 heads of 4 rows, 1 column
    expect(Array.from(permuteRopeRows(rows, 2, 1))).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
  });
});
