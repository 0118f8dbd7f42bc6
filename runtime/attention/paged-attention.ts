// Attention over the paged KV cache for one model step. Each sequence's new keys and values
// are written into its blocks; then each sequence attends by one of three paths:
//   - the WebAssembly kernel (kernels/wasm), when there is one, for decoding tokens: it reads
//     the blocks in place, where ONNX Runtime's graphs first gather a copy of them (faster,
//     most of all with the cache cold);
//   - the attention-core graph, one call per sequence, for prompt chunks (their causal masks
//     differ in shape). From a few queries on, its GEMM beats the kernel's query-by-query
//     passes even with the gather;
//   - without the kernel, decoding tokens share calls of the batched decode graph, one per
//     group of similar lengths, so no call gathers much more cache than its sequences hold
//     (the batch is padded to its longest member).
// MLA models (DeepSeek-V2/V3) cache one latent row per token (keys only, one "head") and have
// no batched graph: their core graph and the kernel take queries already in latent space.
// With tensor-parallel shards each shard has its own PagedAttention over its heads' planes
// (attention-shard.ts).
import { ort } from '../../kernels/session.ts';
import { causalMask, MASKED } from './attention-mask.ts';
import type { KvCachePool } from './kv-cache.ts';
import { blocksCovering, type StepSlot } from '../step-batch.ts';
import type { GraphSession } from '../../kernels/session.ts';
import type { PagedAttentionKernel } from '../../kernels/wasm/paged-attention-kernel.ts';

interface SinglePlan {
  slot: StepSlot;
  blockIds: ort.Tensor;
  mask: ort.Tensor;
}

interface DecodePlan {
  rows: number[];
  blockIds: ort.Tensor;
  mask: ort.Tensor;
}

/** What a step's attention calls need, built once per step and used for every layer. */
export interface AttentionPlan {
  slots: StepSlot[];
  /** Sequences the WebAssembly kernel attends for. */
  kernel: StepSlot[];
  single: SinglePlan[];
  decode: DecodePlan[];
}

/** A decode group may gather at most this much more than its sequences hold (padding). */
const MAX_PADDING = 0.25;

export class PagedAttention {
  /** Each layer's pool planes wrapped once, as graph feeds: ONNX Runtime reads them in place. */
  private readonly poolFeeds: Record<string, ort.Tensor>[];
  /** Query values per head (headDim, or MLA's latent + rope width) and output values per token. */
  private readonly qHeadDim: number;
  private readonly outWidth: number;

  /**
   * `numHeads` query heads attend over the pool's kv heads (a multiple of them); each head's
   * output has `outHeadDim` values (headDim, or MLA's kvLoraRank).
   */
  constructor(
    private readonly pool: KvCachePool,
    private readonly numHeads: number,
    outHeadDim: number,
    private readonly core: GraphSession,
    private readonly decode: GraphSession | null,
    private readonly kernel: PagedAttentionKernel | null = null,
  ) {
    const { shape } = pool;
    this.poolFeeds = pool.keys.map((keys, layer) => {
      const feeds: Record<string, ort.Tensor> = { key_pool: new ort.Tensor('float32', keys, pool.planeDims(shape.keyHeadDim)) };
      if (shape.valueHeadDim > 0) feeds.value_pool = new ort.Tensor('float32', pool.values[layer], pool.planeDims(shape.valueHeadDim));
      return feeds;
    });
    this.qHeadDim = shape.keyHeadDim;
    this.outWidth = numHeads * outHeadDim;
  }

  /** The calls of one step; every sequence's blocks must already cover its new tokens (ModelRunner checks). */
  plan(slots: StepSlot[]): AttentionPlan {
    const kernel = this.kernel ? slots.filter((s) => s.numTokens === 1) : [];
    const inKernel = new Set(kernel);
    const graphs = slots.filter((s) => !inKernel.has(s));
    const groups = this.decode === null ? [] : this.decodeGroups(graphs.filter((s) => s.numTokens === 1)).filter((g) => g.length >= 2);
    const batched = new Set(groups.flat());
    return {
      slots,
      kernel,
      single: graphs.filter((s) => !batched.has(s)).map((slot) => this.singlePlan(slot)),
      decode: groups.map((group) => this.decodePlan(group)),
    };
  }

  /** Decoding sequences by length into groups whose padding to their longest stays within MAX_PADDING. */
  private decodeGroups(decoding: StepSlot[]): StepSlot[][] {
    const groups: StepSlot[][] = [];
    let group: StepSlot[] = [];
    let held = 0;
    for (const s of [...decoding].sort((a, b) => this.numBlocks(a) - this.numBlocks(b))) {
      const blocks = this.numBlocks(s);
      // Sorted ascending, so s would be the group's longest: all members padded to its length.
      if (group.length > 0 && blocks * (group.length + 1) > (1 + MAX_PADDING) * (held + blocks)) {
        groups.push(group);
        group = [];
        held = 0;
      }
      group.push(s);
      held += blocks;
    }
    if (group.length > 0) groups.push(group);
    return groups;
  }

  /**
   * Stores the step's key rows (and value rows; empty for MLA), then returns the attention
   * outputs [numTokens, numHeads * outHeadDim]. q is [numTokens, numHeads, qHeadDim].
   */
  run(layer: number, plan: AttentionPlan, q: Float32Array, k: Float32Array, v: Float32Array, numTokens: number): Float32Array {
    const { numKvHeads, keyHeadDim, valueHeadDim } = this.pool.shape;
    const [keyWidth, valueWidth] = [numKvHeads * keyHeadDim, numKvHeads * valueHeadDim];
    for (const s of plan.slots) {
      const keys = k.subarray(s.row * keyWidth, (s.row + s.numTokens) * keyWidth);
      this.pool.write(layer, s.cache, s.start, keys, v.subarray(s.row * valueWidth, (s.row + s.numTokens) * valueWidth));
    }
    const { numHeads } = this;
    const qWidth = numHeads * this.qHeadDim;
    const attn = new Float32Array(numTokens * this.outWidth);
    if (this.kernel) {
      const keys = this.pool.keys[layer];
      // MLA has no value plane: its values are a prefix of the latent key rows.
      const values = valueHeadDim > 0 ? this.pool.values[layer] : keys;
      for (const s of plan.kernel) {
        const qRows = q.subarray(s.row * qWidth, (s.row + s.numTokens) * qWidth);
        this.kernel.attend(keys, values, s.cache.blockIds, s.start, s.numTokens, qRows, attn, s.row * this.outWidth);
      }
    }
    const queries = (data: Float32Array, count: number) => new ort.Tensor('float32', data, [count, numHeads, this.qHeadDim]);
    for (const { slot, blockIds, mask } of plan.single) {
      const qRows = q.subarray(slot.row * qWidth, (slot.row + slot.numTokens) * qWidth);
      const out = this.core.run({ q: queries(qRows, slot.numTokens), ...this.poolFeeds[layer], block_ids: blockIds, mask });
      attn.set(out.out.data as Float32Array, slot.row * this.outWidth);
    }
    // plan() makes decode groups only when there is a decode graph.
    const decode = this.decode;
    const w = this.outWidth;
    for (const { rows, blockIds, mask } of plan.decode) {
      if (!decode) break;
      const qBatch = new Float32Array(rows.length * qWidth);
      rows.forEach((row, b) => qBatch.set(q.subarray(row * qWidth, (row + 1) * qWidth), b * qWidth));
      const context = decode.run({ q: queries(qBatch, rows.length), ...this.poolFeeds[layer], block_ids: blockIds, mask }).out
        .data as Float32Array;
      rows.forEach((row, b) => attn.set(context.subarray(b * w, (b + 1) * w), row * w));
    }
    return attn;
  }

  private numBlocks(s: StepSlot): number {
    return blocksCovering(s, this.pool.blockSize);
  }

  private singlePlan(slot: StepSlot): SinglePlan {
    const numBlocks = this.numBlocks(slot);
    const width = numBlocks * this.pool.blockSize;
    return {
      slot,
      blockIds: new ort.Tensor('int32', Int32Array.from(slot.cache.blockIds.slice(0, numBlocks)), [numBlocks]),
      mask: new ort.Tensor('float32', causalMask(slot.numTokens, slot.start, width), [slot.numTokens, width]),
    };
  }

  /** Block tables padded to the longest (with the sequence's first block) and masks hiding the padding. */
  private decodePlan(slots: StepSlot[]): DecodePlan {
    const maxBlocks = Math.max(...slots.map((s) => this.numBlocks(s)));
    const width = maxBlocks * this.pool.blockSize;
    const ids = new Int32Array(slots.length * maxBlocks);
    const mask = new Float32Array(slots.length * width).fill(MASKED);
    slots.forEach((s, b) => {
      const numBlocks = this.numBlocks(s);
      ids.fill(s.cache.blockIds[0], b * maxBlocks, (b + 1) * maxBlocks);
      ids.set(s.cache.blockIds.slice(0, numBlocks), b * maxBlocks);
      mask.fill(0, b * width, b * width + s.start + 1);
    });
    return {
      rows: slots.map((s) => s.row),
      blockIds: new ort.Tensor('int32', ids, [slots.length, maxBlocks]),
      mask: new ort.Tensor('float32', mask, [slots.length, width]),
    };
  }
}
