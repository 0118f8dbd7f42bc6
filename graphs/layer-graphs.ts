// The ONNX graphs one decoder model is cut into. Cuts sit where the engine must step in:
// around attention (the KV cache is engine memory, attention runs per sequence), around the
// routed experts (gating and dispatch happen in TypeScript), and where the work splits across
// tensor-parallel shards (one thread each: ONNX Runtime's own pool gains nothing on the small
// matmuls of a decode step, two threads with a half each do):
//   attn-in   : RMSNorm -> fused q/k/v projection -> RoPE, per shard over a slice of the heads
//   attn-core : softmax attention over the shard's own cached keys/values (attention-shard.ts)
//   o-proj    : every shard with heads: o_proj over its heads' columns, a partial sum added
//               into the residual, all shards at once
//   attn-out  : MLA only (attention unsplit, on rank 0): W_UV, o_proj and the residual add
//   mlp-in    : per shard: RMSNorm -> router logits, and the shard's slice of the dense MLP or
//               shared experts; every shard routes its own copy of the rows
//   per shard : each routed expert over a slice of its intermediate units; and the LM head
//               (final RMSNorm) over a slice of the vocabulary
import type { GraphBuilder } from './onnx/graph-builder.ts';
import { linear, type LinearOptions, type LinearWeight, concatLinear } from './ops/linear.ts';
import { rmsNorm } from './ops/norm.ts';
import { applyRope } from './ops/rope.ts';
import { mlaOutProjection } from './mla-graphs.ts';
import { readLinear, type ReadWeight } from './read-weights.ts';
import { swiglu, type SwigluWeights } from './ops/swiglu.ts';
import { type AttentionWeightNames, isMlaNames, type LayerWeightNames } from '../models/family.ts';
import { isMoe, type ModelSpec } from '../models/spec.ts';

/**
 * One tensor-parallel shard of the attention input: RMSNorm, then q/k/v projection and RoPE
 * for the kv heads [kvStart, kvEnd) and the query heads that share them. Outputs `q`
 * [T, qHeads * headDim], `k` and `v` [T, kvHeads * headDim].
 */
export function buildAttentionIn(
  b: GraphBuilder,
  spec: ModelSpec,
  names: LayerWeightNames,
  read: ReadWeight,
  opts: LinearOptions,
  [kvStart, kvEnd]: [number, number],
): void {
  const { hiddenSize: h, numHeads, numKvHeads, headDim: d } = spec;
  const group = numHeads / numKvHeads;
  const [qStart, qEnd] = [kvStart * group, kvEnd * group];
  const numQ = qEnd - qStart;
  const numKv = kvEnd - kvStart;
  const hidden = b.input('hidden', 'float32', ['T', h]);
  const cos = b.input('cos', 'float32', ['T', d / 2]);
  const sin = b.input('sin', 'float32', ['T', d / 2]);
  const a = names.attention;
  if (isMlaNames(a)) throw new Error('buildAttentionIn: MLA layers use buildMlaIn');
  const x = rmsNorm(b, hidden, read(names.inputNorm, [h]), spec.rmsNormEps, 'input_norm');
  // A q/k norm over the whole projection (OLMoE) needs every head's values for its mean
  // square: each shard then projects all q and k heads (a small duplicated matmul) and keeps
  // its own after the norm, so the attention input stays split like every other family's.
  const whole = spec.qkNorm === 'projection';
  const [qFrom, qTo] = whole ? [0, numHeads] : [qStart, qEnd];
  const [kFrom, kTo] = whole ? [0, numKvHeads] : [kvStart, kvEnd];
  const slice = (w: LinearWeight, start: number, end: number): LinearWeight => ({
    ...rows(w, start * d, end * d),
    bias: w.bias?.subarray(start * d, end * d),
  });
  const qkv = concatLinear([
    slice(readLinear(read, a.q, numHeads * d, h, a.qBias), qFrom, qTo),
    slice(readLinear(read, a.k, numKvHeads * d, h, a.kBias), kFrom, kTo),
    slice(readLinear(read, a.v, numKvHeads * d, h, a.vBias), kvStart, kvEnd),
  ]);
  const projected = linear(b, x, qkv, 'qkv', opts);
  const [q, k, v] = b.node('Split', [projected, b.constInt64([(qTo - qFrom) * d, (kTo - kFrom) * d, numKv * d])], 3, { axis: -1 });
  const cos3 = b.op('Unsqueeze', [cos, b.constInt64([1])]);
  const sin3 = b.op('Unsqueeze', [sin, b.constInt64([1])]);
  const norms = qkNorms(b, spec, a, read);
  const ownHeads = (value: string, start: number, end: number): string =>
    whole ? b.op('Slice', [value, b.constInt64([start * d]), b.constInt64([end * d]), b.constInt64([-1])]) : value;
  const roped = (value: string, [start, end]: [number, number], norm: QkNorm | null): string => {
    const normed = ownHeads(norm && whole ? norm(value) : value, start, end);
    const heads = b.op('Reshape', [normed, b.constInt64([0, end - start, d])]);
    const headNormed = norm && spec.qkNorm === 'head' ? norm(heads) : heads;
    return b.op('Reshape', [applyRope(b, headNormed, cos3, sin3, d), b.constInt64([0, (end - start) * d])]);
  };
  b.output(roped(q, [qStart, qEnd], norms.q), 'q', 'float32', ['T', numQ * d]);
  b.output(roped(k, [kvStart, kvEnd], norms.k), 'k', 'float32', ['T', numKv * d]);
  b.output(v, 'v', 'float32', ['T', numKv * d]);
}

type QkNorm = (x: string) => string;

/**
 * The q and k RMSNorms of spec.qkNorm as graph functions; null without. 'head' weights are
 * [headDim], applied to [T, heads, headDim]; 'projection' weights span the whole projection
 * and are applied to every head's values at once.
 */
function qkNorms(b: GraphBuilder, spec: ModelSpec, names: AttentionWeightNames, read: ReadWeight): { q: QkNorm | null; k: QkNorm | null } {
  if (spec.qkNorm === undefined || names.qNorm === undefined || names.kNorm === undefined) return { q: null, k: null };
  const d = spec.headDim;
  const perHead = spec.qkNorm === 'head';
  const qWeight = read(names.qNorm, [perHead ? d : spec.numHeads * d]);
  const kWeight = read(names.kNorm, [perHead ? d : spec.numKvHeads * d]);
  return {
    q: (x) => rmsNorm(b, x, qWeight, spec.rmsNormEps, 'q_norm'),
    k: (x) => rmsNorm(b, x, kWeight, spec.rmsNormEps, 'k_norm'),
  };
}

/**
 * MLA's attention output: W_UV turns each head's attended latent `attn` into values, o_proj
 * projects them, and the residual `hidden` is added: `hidden_out`. MLA attention is not split
 * across shards (one latent row serves every head), so this runs on rank 0 alone.
 */
export function buildAttentionOut(b: GraphBuilder, spec: ModelSpec, names: LayerWeightNames, read: ReadWeight, opts: LinearOptions): void {
  const a = names.attention;
  if (!isMlaNames(a) || !spec.mla) throw new Error('buildAttentionOut: only MLA layers project their attention output in one graph');
  const { hiddenSize: h, numHeads } = spec;
  const attn = b.input('attn', 'float32', ['T', numHeads * spec.mla.kvLoraRank]);
  const hidden = b.input('hidden', 'float32', ['T', h]);
  b.output(b.op('Add', [hidden, mlaOutProjection(b, spec, a, read, opts, attn)]), 'hidden_out', 'float32', ['T', h]);
}

/** A shard's dense-MLP or shared-expert slice, with Qwen2-MoE's shared_expert_gate. */
export interface MlpSlice {
  weights: SwigluWeights;
  gate?: Float32Array;
}

/**
 * One shard's start of a layer's MLP, from the residual `hidden` (attention already added):
 * the post-attention RMSNorm (`mlp_in`), for MoE layers the router (`router_logits`), and the
 * shard's slice of the dense MLP or of the shared experts (`y`, a partial sum) when it has one.
 * Every shard runs its own on the same rows: the norm and router are the same graph on the same
 * input (so every shard routes alike), and no shard waits for another to route.
 */
export function buildMlpIn(
  b: GraphBuilder,
  spec: ModelSpec,
  norm: Float32Array,
  router: LinearWeight | null,
  slice: MlpSlice | null,
  opts: LinearOptions,
): void {
  const h = spec.hiddenSize;
  const hidden = b.input('hidden', 'float32', ['T', h]);
  const x = rmsNorm(b, hidden, norm, spec.rmsNormEps, 'post_norm');
  b.output(x, 'mlp_in', 'float32', ['T', h]);
  // The router stays fp32 whatever the weight precision: expert choice must not drift.
  if (router) b.output(linear(b, x, router, 'router', { precision: 'fp32' }), 'router_logits', 'float32', ['T', router.outFeatures]);
  if (slice) b.output(swigluSlice(b, spec, x, slice, opts), 'y', 'float32', ['T', h]);
}

/**
 * A shard's part of o_proj: the columns of its query heads, applied to its heads' attention
 * output `attn` [T, heads * headDim]. The shards' outputs `y` [T, hidden] add up to the whole
 * projection.
 */
export function buildOutProjection(
  b: GraphBuilder,
  spec: ModelSpec,
  names: LayerWeightNames,
  read: ReadWeight,
  opts: LinearOptions,
  kvHeads: [number, number],
): void {
  const a = names.attention;
  if (isMlaNames(a)) throw new Error('buildOutProjection: MLA attention is not split across shards');
  const [start, end] = headColumns(spec, kvHeads);
  const attn = b.input('attn', 'float32', ['T', end - start]);
  b.output(linear(b, attn, outProjection(spec, a.o, read, kvHeads), 'o_proj', opts), 'y', 'float32', ['T', spec.hiddenSize]);
}

/** o_proj input columns [start, end) of the query heads sharing kv heads [kvStart, kvEnd). */
function headColumns(spec: ModelSpec, [kvStart, kvEnd]: [number, number]): [number, number] {
  const width = (spec.numHeads / spec.numKvHeads) * spec.headDim;
  return [kvStart * width, kvEnd * width];
}

function outProjection(spec: ModelSpec, name: string, read: ReadWeight, kvHeads: [number, number]): LinearWeight {
  const whole = readLinear(read, name, spec.hiddenSize, spec.numHeads * spec.headDim);
  const [start, end] = headColumns(spec, kvHeads);
  return start === 0 && end === whole.inFeatures ? whole : columns(whole, start, end);
}

/** Splits `width` into `shards` contiguous ranges, on 4-bit block boundaries where possible. */
export function shardRanges(width: number, shards: number): Array<[number, number]> {
  const align = width % 32 === 0 && width / shards >= 32 ? 32 : 1;
  const chunk = Math.ceil(width / shards / align) * align;
  return Array.from({ length: shards }, (_, r): [number, number] => [Math.min(width, r * chunk), Math.min(width, (r + 1) * chunk)]);
}

export function rows(w: LinearWeight, start: number, end: number): LinearWeight {
  return { data: w.data.subarray(start * w.inFeatures, end * w.inFeatures), outFeatures: end - start, inFeatures: w.inFeatures };
}

function columns(w: LinearWeight, start: number, end: number): LinearWeight {
  const width = end - start;
  const data = new Float32Array(w.outFeatures * width);
  for (let r = 0; r < w.outFeatures; r++) data.set(w.data.subarray(r * w.inFeatures + start, r * w.inFeatures + end), r * width);
  return { data, outFeatures: w.outFeatures, inFeatures: width };
}

/**
 * One tensor-parallel shard of a SwiGLU MLP: intermediate units [start, end). Shards' outputs
 * add up to the whole MLP's output (down_proj is linear in the intermediate units).
 */
export function sliceSwiglu(w: SwigluWeights, [start, end]: [number, number]): SwigluWeights {
  return { gate: rows(w.gate, start, end), up: rows(w.up, start, end), down: columns(w.down, start, end) };
}

/**
 * A SwiGLU MLP (or one shard of it) over `x`. With a gate [hidden] (Qwen2-MoE's
 * shared_expert_gate) the output is scaled per row by sigmoid(gate . x); that scalar is the
 * same for every shard, so the shards' scaled slices still add up to the gated whole.
 */
function swigluSlice(b: GraphBuilder, spec: ModelSpec, x: string, { weights, gate }: MlpSlice, opts: LinearOptions): string {
  const y = swiglu(b, x, weights, 'mlp', opts);
  if (gate === undefined) return y;
  // fp32 like the router: a one-row matmul costs nothing and keeps the gate exact.
  const logit = linear(b, x, { data: gate, outFeatures: 1, inFeatures: spec.hiddenSize }, 'shared_gate', { precision: 'fp32' });
  return b.op('Mul', [y, b.op('Sigmoid', [logit])]);
}

/** One routed expert (or one shard of it): `x` [M, hidden] -> `y`. */
export function buildSwiglu(b: GraphBuilder, spec: ModelSpec, weights: SwigluWeights, opts: LinearOptions): void {
  const x = b.input('x', 'float32', ['M', spec.hiddenSize]);
  b.output(swigluSlice(b, spec, x, { weights }, opts), 'y', 'float32', ['M', spec.hiddenSize]);
}

/** Final RMSNorm and the vocabulary rows [start, end) of the LM head (one shard of it). */
export function buildLmHead(
  b: GraphBuilder,
  spec: ModelSpec,
  norm: Float32Array,
  head: LinearWeight,
  [start, end]: [number, number],
  opts: LinearOptions,
): void {
  const hidden = b.input('hidden', 'float32', ['R', spec.hiddenSize]);
  const x = rmsNorm(b, hidden, norm, spec.rmsNormEps, 'final_norm');
  b.output(linear(b, x, rows(head, start, end), 'lm_head', opts), 'logits', 'float32', ['R', end - start]);
}
