// Attention core of Multi-head Latent Attention (DeepSeek-V2/V3) in the absorbed form: each
// head's query arrives already multiplied into the latent space (q_nope . W_UK, then the
// rotated q_pe), so one score per cached token is q . row over the cached row
// [latent (kvLoraRank) | k_pe (qkRopeHeadDim)], shared by every head. The output is each
// head's attention-weighted latent; attn-out applies W_UV and o_proj. Nothing per head is
// cached: that is the point of MLA.
import type { GraphBuilder } from '../onnx/graph-builder.ts';

export interface MlaAttentionShape {
  numHeads: number;
  kvLoraRank: number;
  qkRopeHeadDim: number;
  softmaxScale: number;
}

/**
 * Inputs q [t, H, R], key_pool [1, N, S, R] (the paged cache: N blocks of S rows), block_ids
 * int32 [n] (the sequence's blocks), mask [t, n*S] (R = kvLoraRank + qkRope); output
 * [t, H * kvLoraRank].
 */
export function buildMlaAttentionCore(b: GraphBuilder, shape: MlaAttentionShape): void {
  const { numHeads, kvLoraRank, qkRopeHeadDim, softmaxScale } = shape;
  const rowWidth = kvLoraRank + qkRopeHeadDim;
  const q = b.input('q', 'float32', ['t', numHeads, rowWidth]);
  const pool = b.input('key_pool', 'float32', [1, 'N', 'S', rowWidth]);
  const blockIds = b.input('block_ids', 'int32', ['n']);
  const mask = b.input('mask', 'float32', ['t', 'L']);
  const cache = b.op('Reshape', [b.op('Gather', [pool, blockIds], { axis: 1 }), b.constInt64([-1, rowWidth])]); // [L, R]
  const scaled = b.op('Mul', [q, b.constFloat(softmaxScale)]);
  const scores = b.op('MatMul', [scaled, b.op('Transpose', [cache], { perm: [1, 0] })]); // [t, H, L]
  const masked = b.op('Add', [scores, b.op('Unsqueeze', [mask, b.constInt64([1])])]);
  const probs = b.op('Softmax', [masked], { axis: -1 });
  const latent = b.op('Slice', [cache, b.constInt64([0]), b.constInt64([kvLoraRank]), b.constInt64([1])]); // [L, kvLoraRank]
  const context = b.op('MatMul', [probs, latent]); // [t, H, kvLoraRank]
  b.output(b.op('Reshape', [context, b.constInt64([0, numHeads * kvLoraRank])]), 'out', 'float32', ['t', numHeads * kvLoraRank]);
}
