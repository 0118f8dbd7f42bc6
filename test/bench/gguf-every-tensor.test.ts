// Every tensor of a written GGUF against the checkpoint it was written from. The expected
// tensors are derived here straight from the checkpoint's Hugging Face names (not through the
// family definitions the writer uses), so a tensor the writer drops, misnames, misplaces or
// mis-encodes fails. F32 must be the checkpoint's values bit for bit; Q4_0 must decode to
// moe-server's int4 dequantisation with blocks of 32, the scale rounded to f16. Both a bf16
// checkpoint (the bench model's dtype, whose block scales f16 holds exactly) and an f32 one
// (where the f16 rounding shows).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dequantizeInt4, quantizeInt4 } from '../../graphs/ops/quantize.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../models/checkpoint/dtype.ts';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { loadModelSpec } from '../../models/registry.ts';
import type { ModelSpec } from '../../models/spec.ts';
import { type GgufTensorEntry, readGguf, readTensorBytes } from '../../bench/gguf/gguf-reader.ts';
import { permuteRopeRows } from '../../bench/gguf/gguf-tensors.ts';
import { decodeQ4_0, Q4_0_BLOCK_BYTES, Q4_0_BLOCK_SIZE } from '../../bench/gguf/q4-0.ts';
import { writeCheckpointGguf } from '../../bench/gguf/write-gguf.ts';
import { writeSyntheticCheckpoint } from '../../models/synthetic.ts';

/** Hugging Face name -> GGUF name; routed experts also give their index in the stacked tensor. */
const RULES: Array<[RegExp, string]> = [
  [/^model\.embed_tokens\.weight$/, 'token_embd.weight'],
  [/^model\.norm\.weight$/, 'output_norm.weight'],
  [/^lm_head\.weight$/, 'output.weight'],
  [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, 'blk.$1.attn_norm.weight'],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, 'blk.$1.ffn_norm.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.weight$/, 'blk.$1.attn_$2.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj\.weight$/, 'blk.$1.attn_output.weight'],
  [/^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight$/, 'blk.$1.ffn_$2.weight'],
  [/^model\.layers\.(\d+)\.mlp\.gate\.weight$/, 'blk.$1.ffn_gate_inp.weight'],
  [/^model\.layers\.(\d+)\.mlp\.shared_experts\.(gate|up|down)_proj\.weight$/, 'blk.$1.ffn_$2_shexp.weight'],
  [/^model\.layers\.(\d+)\.mlp\.experts\.\d+\.(gate|up|down)_proj\.weight$/, 'blk.$1.ffn_$2_exps.weight'],
];
/** Kept in fp32 by moe-server's int4 path, so F32 in a Q4_0 file too. */
const PLAIN = /^(token_embd|output_norm|blk\.\d+\.(attn_norm|ffn_norm|ffn_gate_inp))\.weight$/;

interface Expected {
  /** ggml dims: the Hugging Face shape reversed, the expert count last for stacked experts. */
  dims: number[];
  values: Float32Array;
}

function ggufNameOf(hfName: string): string {
  for (const [pattern, name] of RULES) if (pattern.test(hfName)) return hfName.replace(pattern, name);
  throw new Error(`no GGUF name for checkpoint tensor ${hfName}`);
}

/** Experts in index order, each [rows, cols], stacked into one [experts, rows, cols] tensor. */
function stackExperts(reader: CheckpointReader, hfNames: string[]): Expected {
  const index = (n: string): number => Number(/\.experts\.(\d+)\./.exec(n)![1]);
  const sorted = [...hfNames].sort((a, b) => index(a) - index(b));
  expect(sorted.map(index)).toEqual(sorted.map((_, i) => i));
  const parts = sorted.map((n) => reader.readFloat32(n));
  const values = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  parts.forEach((p, i) => values.set(p, i * p.length));
  return { dims: [...reader.info(sorted[0]).shape].reverse().concat(sorted.length), values };
}

/** Every tensor the GGUF of this DeepSeekMoE checkpoint must hold (llama.cpp's adjacent-pair rope: q/k rows permuted). */
function expectedTensors(reader: CheckpointReader, spec: ModelSpec): Map<string, Expected> {
  const byGguf = new Map<string, string[]>();
  for (const hf of reader.names()) {
    const name = ggufNameOf(hf);
    byGguf.set(name, [...(byGguf.get(name) ?? []), hf]);
  }
  const out = new Map<string, Expected>();
  for (const [name, hfNames] of byGguf) {
    if (name.endsWith('_exps.weight')) {
      out.set(name, stackExperts(reader, hfNames));
      continue;
    }
    expect(hfNames).toHaveLength(1);
    const shape = reader.info(hfNames[0]).shape;
    let values = reader.readFloat32(hfNames[0]);
    if (/attn_[qk]\.weight$/.test(name))
      values = permuteRopeRows(values, name.includes('attn_q') ? spec.numHeads : spec.numKvHeads, shape[1]);
    out.set(name, { dims: [...shape].reverse(), values });
  }
  return out;
}

function byteLength(t: GgufTensorEntry): number {
  const n = t.dims.reduce((a, b) => a * b, 1);
  return t.type === 'q4_0' ? (n / Q4_0_BLOCK_SIZE) * Q4_0_BLOCK_BYTES : 4 * n;
}

function floats(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** moe-server's int4 weights of a [rows, cols] matrix in blocks of 32, each scale rounded to f16 as Q4_0 stores it. */
function int4WithF16Scales(values: Float32Array, rows: number, cols: number): Float32Array {
  const q = quantizeInt4(values, rows, cols, Q4_0_BLOCK_SIZE);
  return dequantizeInt4({ ...q, scales: q.scales.map((s) => f16BitsToF32(f32ToF16Bits(s))) });
}

function expectBitwise(actual: Float32Array, expected: Float32Array, name: string): void {
  expect(actual.length, name).toBe(expected.length);
  const same = Buffer.compare(
    Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength),
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  );
  expect(same, `${name} differs from the checkpoint`).toBe(0);
}

describe.each(['BF16', 'F32'] as const)('every tensor of the GGUF of a %s DeepSeekMoE checkpoint', (dtype) => {
  const root = mkdtempSync(join(tmpdir(), 'moe-gguf-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const modelDir = join(root, 'model');
  writeSyntheticCheckpoint({ outDir: modelDir, size: 'tiny', seed: 3, dtype });
  const { spec } = loadModelSpec(modelDir);
  const reader = CheckpointReader.open(modelDir);
  afterAll(() => reader.close());
  const expected = expectedTensors(reader, spec);

  it('F32: each checkpoint tensor, under its llama.cpp name and dims, with the same bits', () => {
    const file = writeCheckpointGguf({ modelDir, outFile: join(root, 'f32.gguf'), weights: 'f32' }).file;
    const tensors = readGguf(file).tensors;
    expect(tensors.map((t) => t.name).sort()).toEqual([...expected.keys()].sort());
    for (const t of tensors) {
      const e = expected.get(t.name)!;
      expect(t.type, t.name).toBe('f32');
      expect(t.dims, t.name).toEqual(e.dims);
      expectBitwise(floats(readTensorBytes(file, t.offset, byteLength(t))), e.values, t.name);
    }
  });

  it("Q4_0: every linear layer decodes to moe-server's int4 values (blocks of 32, f16 scale); the rest stays F32", () => {
    const file = writeCheckpointGguf({ modelDir, outFile: join(root, 'q4.gguf'), weights: 'q4_0' }).file;
    const tensors = readGguf(file).tensors;
    expect(tensors.map((t) => t.name).sort()).toEqual([...expected.keys()].sort());
    for (const t of tensors) {
      const e = expected.get(t.name)!;
      expect(t.dims, t.name).toEqual(e.dims);
      const bytes = readTensorBytes(file, t.offset, byteLength(t));
      if (PLAIN.test(t.name)) {
        expect(t.type, t.name).toBe('f32');
        expectBitwise(floats(bytes), e.values, t.name);
        continue;
      }
      expect(t.type, t.name).toBe('q4_0');
      const cols = e.dims[0];
      expectBitwise(decodeQ4_0(bytes), int4WithF16Scales(e.values, e.values.length / cols, cols), t.name);
    }
  });
});
