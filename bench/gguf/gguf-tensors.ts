// The tensors of a checkpoint in llama.cpp's names and layout: ggml dims (a Hugging Face shape
// reversed), routed experts stacked into one 3-D tensor per projection, q/k rows permuted for
// llama.cpp's adjacent-pair rope where the architecture uses it. Each tensor is produced on
// demand, so a writer holds one tensor (one layer's stacked experts) at a time.
//
// Types follow moe-server's int4 path exactly, not llama-quantize's choices: in a 'q4_0' file
// every linear layer moe-server runs as MatMulNBits (attention, dense MLPs, experts, shared
// experts, LM head; whole blocks of 32 inputs) is Q4_0; the embeddings, norms and routers,
// which moe-server keeps in fp32, stay F32 (llama-quantize would also quantise token_embd and
// make the LM head Q6_K).
import type { ReadWeight } from '../../models/checkpoint/weight-source.ts';
import { isMlaNames, type ModelWeightNames, type SwigluWeightNames } from '../../models/family.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { GgmlType, GgufTensorInfo } from './gguf-format.ts';
import type { LlamaArch } from './llama-arch.ts';
import { encodeQ4_0, Q4_0_BLOCK_SIZE } from './q4-0.ts';

export interface GgufTensorSource extends GgufTensorInfo {
  /** The tensor's bytes in its type. */
  encode(): Uint8Array;
}

type Kind = 'linear' | 'plain';

/** Rows of [numHeads * headDim, cols] from rotate-half order to adjacent pairs, per head. */
export function permuteRopeRows(data: Float32Array, numHeads: number, cols: number): Float32Array {
  const headDim = data.length / cols / numHeads;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < numHeads; h++) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const src = h * headDim + s * half + j;
        const dst = h * headDim + 2 * j + s;
        out.set(data.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function source(name: string, dims: number[], kind: Kind, weights: 'f32' | 'q4_0', values: () => Float32Array): GgufTensorSource {
  const type: GgmlType = weights === 'q4_0' && kind === 'linear' && dims[0] % Q4_0_BLOCK_SIZE === 0 ? 'q4_0' : 'f32';
  const rows = dims.slice(1).reduce((a, b) => a * b, 1);
  return {
    name,
    dims,
    type,
    encode: () => {
      const v = values();
      if (v.length !== rows * dims[0]) throw new Error(`${name}: ${v.length} values for dims [${dims.join(', ')}]`);
      return type === 'q4_0' ? encodeQ4_0(v, rows, dims[0]) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    },
  };
}

/** Every tensor of the GGUF, in llama.cpp's names. */
export function ggufTensors(
  spec: ModelSpec,
  names: ModelWeightNames,
  read: ReadWeight,
  arch: LlamaArch,
  weights: 'f32' | 'q4_0',
): GgufTensorSource[] {
  const h = spec.hiddenSize;
  const out: GgufTensorSource[] = [];
  const add = (name: string, hfShape: number[], kind: Kind, values: () => Float32Array): void => {
    out.push(source(name, [...hfShape].reverse(), kind, weights, values));
  };
  const tensor = (hfName: string, hfShape: number[]) => () => read(hfName, hfShape);
  add('token_embd.weight', [spec.vocabSize, h], 'plain', tensor(names.embedTokens, [spec.vocabSize, h]));
  add('output_norm.weight', [h], 'plain', tensor(names.finalNorm, [h]));
  // Written even when tied: every architecture here accepts it, some require it.
  add('output.weight', [spec.vocabSize, h], 'linear', tensor(names.lmHead, [spec.vocabSize, h]));
  names.layers.forEach((layer, i) => {
    const blk = `blk.${i}.`;
    const attention = layer.attention;
    if (isMlaNames(attention)) throw new Error('MLA attention is not written by this tool');
    const q = spec.numHeads * spec.headDim;
    const kv = spec.numKvHeads * spec.headDim;
    const rope = (heads: number, rows: number, hfName: string) => () => {
      const data = read(hfName, [rows, h]);
      return arch.rope === 'norm' ? permuteRopeRows(data, heads, h) : data;
    };
    add(`${blk}attn_norm.weight`, [h], 'plain', tensor(layer.inputNorm, [h]));
    add(`${blk}attn_q.weight`, [q, h], 'linear', rope(spec.numHeads, q, attention.q));
    add(`${blk}attn_k.weight`, [kv, h], 'linear', rope(spec.numKvHeads, kv, attention.k));
    add(`${blk}attn_v.weight`, [kv, h], 'linear', tensor(attention.v, [kv, h]));
    add(`${blk}attn_output.weight`, [h, q], 'linear', tensor(attention.o, [h, q]));
    if (attention.qBias || attention.kBias || attention.vBias) throw new Error('attention biases are not written by this tool');
    if (attention.qNorm && attention.kNorm) {
      if (spec.qkNorm !== 'projection') throw new Error('per-head q/k norms are not written by this tool');
      add(`${blk}attn_q_norm.weight`, [q], 'plain', tensor(attention.qNorm, [q]));
      add(`${blk}attn_k_norm.weight`, [kv], 'plain', tensor(attention.kNorm, [kv]));
    }
    add(`${blk}ffn_norm.weight`, [h], 'plain', tensor(layer.postAttentionNorm, [h]));
    const mlp = spec.mlp[i];
    const swiglu = (suffix: string, n: SwigluWeightNames, width: number): void => {
      add(`${blk}ffn_gate${suffix}.weight`, [width, h], 'linear', tensor(n.gate, [width, h]));
      add(`${blk}ffn_up${suffix}.weight`, [width, h], 'linear', tensor(n.up, [width, h]));
      add(`${blk}ffn_down${suffix}.weight`, [h, width], 'linear', tensor(n.down, [h, width]));
    };
    if (layer.mlp.kind === 'dense' || mlp.kind === 'dense') {
      if (layer.mlp.kind !== 'dense' || mlp.kind !== 'dense') throw new Error(`layer ${i}: names and spec disagree`);
      swiglu('', layer.mlp.mlp, mlp.intermediateSize);
      return;
    }
    const e = mlp.numRoutedExperts;
    const f = mlp.expertIntermediateSize;
    add(`${blk}ffn_gate_inp.weight`, [e, h], 'plain', tensor(layer.mlp.router, [e, h]));
    const experts = layer.mlp.experts;
    const stacked = (pick: (n: SwigluWeightNames) => string, shape: number[]) => () => concat(experts.map((n) => read(pick(n), shape)));
    add(
      `${blk}ffn_gate_exps.weight`,
      [e, f, h],
      'linear',
      stacked((n) => n.gate, [f, h]),
    );
    add(
      `${blk}ffn_up_exps.weight`,
      [e, f, h],
      'linear',
      stacked((n) => n.up, [f, h]),
    );
    add(
      `${blk}ffn_down_exps.weight`,
      [e, h, f],
      'linear',
      stacked((n) => n.down, [h, f]),
    );
    if (layer.mlp.shared) swiglu('_shexp', layer.mlp.shared, mlp.sharedIntermediateSize);
    if (layer.mlp.sharedGate) throw new Error('gated shared experts (Qwen2-MoE) are not written by this tool');
  });
  return out;
}
