// One tensor-parallel shard's attention: the q/k/v projection of its heads, its own KV cache
// (those heads' planes of every layer), paged attention over that cache and its part of
// o_proj. Splitting the cache by heads splits attention's bytes and work across the
// shards the way the matmuls already are; no shard ever reads another's planes. Block tables
// belong to rank 0 (the block manager lives there) and reach the other ranks once per step.
// MLA keeps its single latent row unsplit on rank 0 (every head reads all of it).
import { GraphSession, ort } from '../../kernels/session.ts';
import { type KernelLayout, PagedAttentionKernel } from '../../kernels/wasm/paged-attention-kernel.ts';
import type { ModelSpec } from '../../models/spec.ts';
import { KvCachePool } from './kv-cache.ts';
import { kvCacheShape } from './kv-cache-shape.ts';
import type { StepSlot } from '../step-batch.ts';
import { type AttentionPlan, PagedAttention } from './paged-attention.ts';

export interface AttentionShardSessions {
  /** Kv heads [start, end) the shard owns; MLA's latent row counts as head 0. */
  kvHeads: [number, number];
  /** Null when the shard has no heads. */
  core: GraphSession | null;
  decode: GraphSession | null;
  /** Per layer: the q/k/v projection of the shard's heads (null for MLA, whose mla-in is unsplit). */
  attnIn: Array<GraphSession | null>;
  /** Per layer: the shard's columns of o_proj (null for MLA, whose attention is not split). */
  oProj: Array<GraphSession | null>;
}

/** The pool every shard allocates for its heads: the same block ids mean the same tokens on every shard. */
export interface KvCacheSize {
  numBlocks: number;
  blockSize: number;
}

export class AttentionShard {
  private paged: PagedAttention | null = null;
  private cache: KvCachePool | null = null;
  private slots: StepSlot[] = [];
  /** Plans of the current step by row range; every layer reuses them. */
  private readonly plans = new Map<string, AttentionPlan>();

  /** `kernel`: the WebAssembly attention kernel's module, or null to attend with ONNX Runtime only. */
  constructor(
    private readonly spec: ModelSpec,
    readonly sessions: AttentionShardSessions,
    private readonly kernel: WebAssembly.Module | null = null,
  ) {}

  get hasHeads(): boolean {
    return this.sessions.core !== null;
  }

  get pool(): KvCachePool {
    if (!this.cache) throw new Error('the KV cache is not allocated yet');
    return this.cache;
  }

  /** Allocates this shard's planes of a cache of `size`, dropping any earlier one. */
  attachCache(size: KvCacheSize): KvCachePool {
    const { core, decode, kvHeads } = this.sessions;
    if (!core) throw new Error('this shard has no attention heads');
    const shape = kvCacheShape(this.spec, kvHeads);
    const { mla, numHeads, numKvHeads, headDim } = this.spec;
    const queryHeads = mla ? numHeads : (kvHeads[1] - kvHeads[0]) * (numHeads / numKvHeads);
    const layout: KernelLayout = {
      numHeads: queryHeads,
      numKvHeads: shape.numKvHeads,
      keyDim: shape.keyHeadDim,
      // MLA's values are the first kvLoraRank floats of its latent key rows.
      valueDim: mla ? mla.kvLoraRank : headDim,
      valueRowFloats: mla ? shape.keyHeadDim : headDim,
      scale: mla ? mla.softmaxScale : 1 / Math.sqrt(headDim),
      numBlocks: size.numBlocks,
      blockSize: size.blockSize,
    };
    const kernel =
      this.kernel && PagedAttentionKernel.create(this.kernel, layout, KvCachePool.planeFloats(shape, size.numBlocks, size.blockSize));
    const pool = new KvCachePool(shape, size.numBlocks, size.blockSize, kernel ? (floats) => kernel.floats(floats) : undefined);
    this.paged = new PagedAttention(pool, queryHeads, layout.valueDim, core, decode, kernel);
    this.cache = pool;
    this.beginStep([]);
    return pool;
  }

  /** The step's sequences: their rows, cached lengths and block tables. */
  beginStep(slots: StepSlot[]): void {
    this.slots = slots;
    this.plans.clear();
  }

  /** The plan of step rows [start, start + rows): each sequence's part of that range. */
  planFor(start: number, rows: number): AttentionPlan {
    const key = `${start}:${rows}`;
    let plan = this.plans.get(key);
    if (!plan) {
      plan = this.pagedAttention.plan(slotsInRows(this.slots, start, rows));
      this.plans.set(key, plan);
    }
    return plan;
  }

  get pagedAttention(): PagedAttention {
    if (!this.paged) throw new Error('the KV cache is not allocated yet');
    return this.paged;
  }

  /**
   * Step rows [start, start + rows) through this shard's heads: q/k/v, storing k/v in its cache,
   * and attention. Returns [rows, heads * headDim]. Rows must arrive in order: a sequence's
   * earlier rows are cached before its later rows attend.
   */
  attend(layer: number, start: number, rows: number, hidden: Float32Array, cos: Float32Array, sin: Float32Array): Float32Array {
    const session = this.sessions.attnIn[layer];
    if (!session) throw new Error(`layer ${layer} has no attention input on this shard`);
    const half = cos.length / rows;
    const out = session.run({
      hidden: new ort.Tensor('float32', hidden, [rows, this.spec.hiddenSize]),
      cos: new ort.Tensor('float32', cos, [rows, half]),
      sin: new ort.Tensor('float32', sin, [rows, half]),
    });
    const data = (name: string) => out[name].data as Float32Array;
    return this.pagedAttention.run(layer, this.planFor(start, rows), data('q'), data('k'), data('v'), rows);
  }

  /** attend(), then this shard's part of o_proj: [rows, hidden], a partial sum of the projection. */
  attendProjected(layer: number, start: number, rows: number, hidden: Float32Array, cos: Float32Array, sin: Float32Array): Float32Array {
    const session = this.sessions.oProj[layer];
    if (!session) throw new Error(`layer ${layer} has no o_proj part on this shard`);
    const attn = this.attend(layer, start, rows, hidden, cos, sin);
    return session.run({ attn: new ort.Tensor('float32', attn, [rows, attn.length / rows]) }).y.data as Float32Array;
  }

  all(): GraphSession[] {
    const { core, decode, attnIn, oProj } = this.sessions;
    return [core, decode, ...attnIn, ...oProj].filter((s): s is GraphSession => s !== null);
  }
}

/** Each sequence's part of step rows [start, start + rows), with rows counted from `start`. */
export function slotsInRows(slots: StepSlot[], start: number, rows: number): StepSlot[] {
  const end = start + rows;
  const inside: StepSlot[] = [];
  for (const s of slots) {
    const from = Math.max(s.row, start);
    const to = Math.min(s.row + s.numTokens, end);
    if (from < to) inside.push({ cache: s.cache, row: from - start, numTokens: to - from, start: s.start + (from - s.row) });
  }
  return inside;
}
