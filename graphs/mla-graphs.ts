// The per-layer graphs of Multi-head Latent Attention (DeepSeek-V2/V3), in the absorbed form:
//   mla-in  : RMSNorm -> q (direct or through q_lora_rank) -> per head [q_nope W_UK | rope(q_pe)],
//             and the cache row [kv_a_layernorm(latent) | rope(k_pe)] of each token
//   core    : kernels/ops/mla-attention.ts, over the cached rows
//   attn-out: each head's attended latent times W_UV^T, then o_proj (buildAttentionOut)
// W_UK and W_UV are the key and value halves of kv_b_proj per head. Folding them this way
// keeps the cache at kvLoraRank + qkRope values per token and layer instead of every head's
// keys and values, and never expands the cache during attention.
import type { GraphBuilder } from './onnx/graph-builder.ts';
import { linear, type LinearOptions } from './ops/linear.ts';
import { rmsNorm } from './ops/norm.ts';
import { applyRope } from './ops/rope.ts';
import type { MlaWeightNames } from '../models/family.ts';
import { readLinear, type ReadWeight } from './read-weights.ts';
import type { MlaSpec, ModelSpec } from '../models/spec.ts';

function mlaOf(spec: ModelSpec): MlaSpec {
  if (spec.mla === undefined) throw new Error('MLA graph for a model without MLA');
  return spec.mla;
}

/**
 * kv_b_proj [H * (nope + v), kvLoraRank] split per head into W_UK as [H, nope, kvLoraRank]
 * (right-multiplies q_nope) and W_UV transposed as [H, kvLoraRank, v] (right-multiplies the latent).
 */
function splitKvB(kvB: Float32Array, heads: number, mla: MlaSpec): { uk: Float32Array; uvT: Float32Array } {
  const { qkNopeHeadDim: nope, vHeadDim: v, kvLoraRank: c } = mla;
  const uk = new Float32Array(heads * nope * c);
  const uvT = new Float32Array(heads * c * v);
  for (let h = 0; h < heads; h++) {
    const base = h * (nope + v) * c;
    uk.set(kvB.subarray(base, base + nope * c), h * nope * c);
    for (let j = 0; j < v; j++) {
      for (let i = 0; i < c; i++) uvT[h * c * v + i * v + j] = kvB[base + (nope + j) * c + i];
    }
  }
  return { uk, uvT };
}

/**
 * DeepSeek's interleaved RoPE on x [T, n, r]: gathering [evens | odds] and rotating halves is
 * what the reference does (it permutes the same way before rotate_half).
 */
function ropeInterleaved(b: GraphBuilder, x: string, cos: string, sin: string, r: number): string {
  const evens = b.constInt64(Array.from({ length: r / 2 }, (_, i) => 2 * i));
  const odds = b.constInt64(Array.from({ length: r / 2 }, (_, i) => 2 * i + 1));
  const halves = b.op('Concat', [b.op('Gather', [x, evens], { axis: 2 }), b.op('Gather', [x, odds], { axis: 2 })], { axis: -1 });
  return applyRope(b, halves, cos, sin, r);
}

/** The query projection of every head, [T, H * (nope + rope)]. */
function projectQuery(b: GraphBuilder, spec: ModelSpec, names: MlaWeightNames, read: ReadWeight, opts: LinearOptions, x: string): string {
  const mla = mlaOf(spec);
  const width = spec.numHeads * (mla.qkNopeHeadDim + mla.qkRopeHeadDim);
  if (mla.qLoraRank === null) {
    if (names.q === undefined) throw new Error('MLA without q_lora_rank needs q_proj');
    return linear(b, x, readLinear(read, names.q, width, spec.hiddenSize), 'q_proj', opts);
  }
  if (names.qA === undefined || names.qB === undefined || names.qANorm === undefined)
    throw new Error('MLA with q_lora_rank needs q_a_proj, q_a_layernorm, q_b_proj');
  const compressed = linear(b, x, readLinear(read, names.qA, mla.qLoraRank, spec.hiddenSize), 'q_a_proj', opts);
  const normed = rmsNorm(b, compressed, read(names.qANorm, [mla.qLoraRank]), spec.rmsNormEps, 'q_a_norm');
  return linear(b, normed, readLinear(read, names.qB, width, mla.qLoraRank), 'q_b_proj', opts);
}

/** Inputs hidden [T, h], cos/sin [T, rope / 2]; outputs q [T, H * R] and the cache rows kv [T, R]. */
export function buildMlaIn(
  b: GraphBuilder,
  spec: ModelSpec,
  inputNorm: string,
  names: MlaWeightNames,
  read: ReadWeight,
  opts: LinearOptions,
): void {
  const mla = mlaOf(spec);
  const { hiddenSize: h, numHeads: heads } = spec;
  const { qkNopeHeadDim: nope, qkRopeHeadDim: r, kvLoraRank: c } = mla;
  const hidden = b.input('hidden', 'float32', ['T', h]);
  const cos = b.op('Unsqueeze', [b.input('cos', 'float32', ['T', r / 2]), b.constInt64([1])]);
  const sin = b.op('Unsqueeze', [b.input('sin', 'float32', ['T', r / 2]), b.constInt64([1])]);
  const x = rmsNorm(b, hidden, read(inputNorm, [h]), spec.rmsNormEps, 'input_norm');
  const q = b.op('Reshape', [projectQuery(b, spec, names, read, opts, x), b.constInt64([0, heads, nope + r])]);
  const [qNope, qPe] = b.node('Split', [q, b.constInt64([nope, r])], 2, { axis: -1 });
  const { uk } = splitKvB(read(names.kvB, [heads * (nope + mla.vHeadDim), c]), heads, mla);
  const headsFirst = b.op('Transpose', [qNope], { perm: [1, 0, 2] }); // [H, T, nope]
  const absorbed = b.op('MatMul', [headsFirst, b.initializer('w_uk', uk, [heads, nope, c])]); // [H, T, c]
  const qLatent = b.op('Transpose', [absorbed], { perm: [1, 0, 2] });
  const qRow = b.op('Concat', [qLatent, ropeInterleaved(b, qPe, cos, sin, r)], { axis: -1 });
  b.output(b.op('Reshape', [qRow, b.constInt64([0, heads * (c + r)])]), 'q', 'float32', ['T', heads * (c + r)]);

  const kv = linear(b, x, readLinear(read, names.kvA, c + r, h), 'kv_a_proj', opts);
  const [latent, kPe] = b.node('Split', [kv, b.constInt64([c, r])], 2, { axis: -1 });
  const normed = rmsNorm(b, latent, read(names.kvANorm, [c]), spec.rmsNormEps, 'kv_a_norm');
  const kPeRoped = b.op('Reshape', [ropeInterleaved(b, b.op('Unsqueeze', [kPe, b.constInt64([1])]), cos, sin, r), b.constInt64([0, r])]);
  b.output(b.op('Concat', [normed, kPeRoped], { axis: -1 }), 'kv', 'float32', ['T', c + r]);
}

/** attn [T, H * kvLoraRank] (each head's attended latent) -> W_UV per head -> o_proj: [T, hidden]. */
export function mlaOutProjection(
  b: GraphBuilder,
  spec: ModelSpec,
  names: MlaWeightNames,
  read: ReadWeight,
  opts: LinearOptions,
  attn: string,
): string {
  const mla = mlaOf(spec);
  const { numHeads: heads, hiddenSize: h } = spec;
  const { kvLoraRank: c, vHeadDim: v, qkNopeHeadDim: nope } = mla;
  const { uvT } = splitKvB(read(names.kvB, [heads * (nope + v), c]), heads, mla);
  const headsFirst = b.op('Transpose', [b.op('Reshape', [attn, b.constInt64([0, heads, c])])], { perm: [1, 0, 2] }); // [H, T, c]
  const values = b.op('MatMul', [headsFirst, b.initializer('w_uv_t', uvT, [heads, c, v])]); // [H, T, v]
  const tokensFirst = b.op('Reshape', [b.op('Transpose', [values], { perm: [1, 0, 2] }), b.constInt64([0, heads * v])]);
  return linear(b, tokensFirst, readLinear(read, names.o, h, heads * v), 'o_proj', opts);
}
