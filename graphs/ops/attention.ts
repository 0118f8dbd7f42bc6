// Scaled dot-product attention of one sequence's new queries over its cached keys and
// values. The cache is the engine's block pool, head-major [kvHeads, numBlocks, blockSize,
// headDim] per layer, passed zero-copy; the graph gathers the sequence's blocks (its block
// table) into [kvHeads, tokens, headDim]. Positions past the sequence's end in its last block
// are masked. Grouped-query attention shares each kv head among numHeads / numKvHeads query
// heads (query head h uses kv head h / group).
import type { GraphBuilder } from '../onnx/graph-builder.ts';

export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * Builds the attention-core graph: inputs q [t, H, d], key_pool/value_pool [Hkv, N, B, d],
 * block_ids int32 [n], mask [t, n*B]; output [t, H*d].
 */
export function buildAttentionCore(b: GraphBuilder, shape: AttentionShape): void {
  const { numHeads, numKvHeads, headDim } = shape;
  const group = numHeads / numKvHeads;
  const q = b.input('q', 'float32', ['t', numHeads, headDim]);
  const keyPool = b.input('key_pool', 'float32', [numKvHeads, 'N', 'B', headDim]);
  const valuePool = b.input('value_pool', 'float32', [numKvHeads, 'N', 'B', headDim]);
  const blockIds = b.input('block_ids', 'int32', ['n']);
  const mask = b.input('mask', 'float32', ['t', 'L']);
  const gather = (pool: string): string =>
    b.op('Reshape', [b.op('Gather', [pool, blockIds], { axis: 1 }), b.constInt64([numKvHeads, -1, headDim])]); // [Hkv, L, d]

  const scaled = b.op('Mul', [q, b.constFloat(1 / Math.sqrt(headDim))]);
  const qGrouped = b.op('Reshape', [scaled, b.constInt64([0, numKvHeads, group, headDim])]);
  const qHeadsFirst = b.op('Transpose', [qGrouped], { perm: [1, 2, 0, 3] }); // [Hkv, g, t, d]
  const qFlat = b.op('Reshape', [qHeadsFirst, b.constInt64([numKvHeads, -1, headDim])]); // [Hkv, g*t, d]
  const kT = b.op('Transpose', [gather(keyPool)], { perm: [0, 2, 1] }); // [Hkv, d, L]
  const scores = b.op('MatMul', [qFlat, kT]); // [Hkv, g*t, L]
  // Rows of scores are (group member, token); the mask is per token, so repeat it per member.
  const groupMask = group === 1 ? mask : b.op('Tile', [mask, b.constInt64([group, 1])]); // [g*t, L]
  const probsFlat = b.op('Softmax', [b.op('Add', [scores, groupMask])], { axis: -1 });
  const context = b.op('MatMul', [probsFlat, gather(valuePool)]); // [Hkv, g*t, d]
  const context4 = b.op('Reshape', [context, b.constInt64([numKvHeads, group, -1, headDim])]);
  const tokensFirst = b.op('Transpose', [context4], { perm: [2, 0, 1, 3] }); // [t, Hkv, g, d]
  const out = b.op('Reshape', [tokensFirst, b.constInt64([0, numHeads * headDim])]);
  b.output(out, 'out', 'float32', ['t', numHeads * headDim]);
}

/**
 * Builds the batched decode-attention graph: one new query per sequence for B sequences in one
 * call (a decode step's sequences would otherwise cost one call each per layer). Inputs
 * q [B, H, d], key_pool/value_pool [Hkv, N, S, d] (S tokens per block), block_ids int32 [B, n] (each
 * row a sequence's blocks, padded with any valid block), mask [B, n*S] (0 where the sequence
 * has a token, large negative elsewhere); output [B, H*d]. Work stays in kv-head-major order
 * [Hkv, B, ...], the order the pool gather produces, so only q and the context are transposed.
 */
export function buildDecodeAttention(b: GraphBuilder, shape: AttentionShape): void {
  const { numHeads, numKvHeads, headDim } = shape;
  const group = numHeads / numKvHeads;
  const q = b.input('q', 'float32', ['B', numHeads, headDim]);
  const keyPool = b.input('key_pool', 'float32', [numKvHeads, 'N', 'S', headDim]);
  const valuePool = b.input('value_pool', 'float32', [numKvHeads, 'N', 'S', headDim]);
  const blockIds = b.input('block_ids', 'int32', ['B', 'n']);
  const mask = b.input('mask', 'float32', ['B', 'L']);
  // [Hkv, B, n, S, d] -> [Hkv, B, L, d]
  const gather = (pool: string): string =>
    b.op('Reshape', [b.op('Gather', [pool, blockIds], { axis: 1 }), b.constInt64([numKvHeads, 0, -1, headDim])]);

  const scaled = b.op('Mul', [q, b.constFloat(1 / Math.sqrt(headDim))]);
  const qGrouped = b.op('Reshape', [scaled, b.constInt64([0, numKvHeads, group, headDim])]); // [B, Hkv, g, d]
  const qHeadsFirst = b.op('Transpose', [qGrouped], { perm: [1, 0, 2, 3] }); // [Hkv, B, g, d]
  const kT = b.op('Transpose', [gather(keyPool)], { perm: [0, 1, 3, 2] }); // [Hkv, B, d, L]
  const scores = b.op('MatMul', [qHeadsFirst, kT]); // [Hkv, B, g, L]
  const rowMask = b.op('Unsqueeze', [mask, b.constInt64([1])]); // [B, 1, L], broadcast over Hkv and g
  const probs = b.op('Softmax', [b.op('Add', [scores, rowMask])], { axis: -1 });
  const context = b.op('MatMul', [probs, gather(valuePool)]); // [Hkv, B, g, d]
  const tokensFirst = b.op('Transpose', [context], { perm: [1, 0, 2, 3] }); // [B, Hkv, g, d]
  const out = b.op('Reshape', [tokensFirst, b.constInt64([0, numHeads * headDim])]);
  b.output(out, 'out', 'float32', ['B', numHeads * headDim]);
}
