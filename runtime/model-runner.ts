// One forward step over a batch of sequences: each contributes its new tokens (a prefill
// chunk or one decode token), and all tokens of the step share every weight-bound graph
// call, so an expert runs once per step on every row routed to it. Stages per layer, each on
// every tensor-parallel shard at once (tp/shard-group.ts): attention (each shard over its
// heads' cache) and its o_proj part -> the feed-forward block (moe/moe-layer.ts: norm, router
// logits and the shard's dense/shared slice -> Router -> Dispatch -> Experts -> Combine).
import { gatherRows } from './moe/dispatch.ts';
import type { RoutingResult } from './moe/router.ts';
import { fillRopeTables } from './attention/rope-tables.ts';
import { ort } from '../kernels/session.ts';
import type { ModelSpec } from '../models/spec.ts';
import type { KvCacheSize } from './attention/attention-shard.ts';
import type { KvCachePool } from './attention/kv-cache.ts';
import type { ModelSessions } from './model-sessions.ts';
import { blocksCovering, layOutStep, logitRowsOf, type StepResult, type StepSequence, type StepSlot } from './step-batch.ts';
import { runMlaAttention } from './attention/mla-attention.ts';

export class ModelRunner {
  readonly spec: ModelSpec;
  /** Rank 0's part of the KV cache (all of it for MLA); the other shards hold their heads' planes. */
  readonly kvPool: KvCachePool;

  /** Allocates a KV cache of `cache` blocks, every shard its heads' part, for the steps to come. */
  constructor(
    readonly sessions: ModelSessions,
    cache: KvCacheSize,
  ) {
    this.spec = sessions.manifest.spec;
    this.kvPool = sessions.shards.attachKvCache(cache);
  }

  step(batch: StepSequence[]): StepResult {
    const { hiddenSize: h } = this.spec;
    const slots = layOutStep(batch);
    for (const s of slots) {
      const needed = blocksCovering(s, this.kvPool.blockSize);
      if (s.cache.blockIds.length < needed)
        throw new Error(`step: a sequence holds ${s.cache.blockIds.length} cache blocks but needs ${needed}`);
    }
    const shards = this.sessions.shards;
    shards.beginStep(slots);
    const numTokens = slots.reduce((n, s) => n + s.numTokens, 0);
    let hidden = this.sessions.embeddings.embedStep(batch, slots, numTokens, this.spec.vocabSize);
    // rotaryDim == headDim except for MLA, whose rope covers only qk_rope_head_dim.
    const cos = new Float32Array(numTokens * (this.spec.rope.rotaryDim / 2));
    const sin = new Float32Array(numTokens * (this.spec.rope.rotaryDim / 2));
    for (const s of slots) {
      const positions = Array.from({ length: s.numTokens }, (_, i) => s.start + i);
      fillRopeTables(this.spec.rope, positions, s.start + s.numTokens, cos, sin, s.row);
    }
    const routing: RoutingResult[] = [];
    const moeLayers: number[] = [];
    for (let layer = 0; layer < this.spec.numLayers; layer++) {
      if (this.spec.mla) {
        // MLA attends on rank 0 alone; its attn-out projects and adds the residual.
        const attn = runMlaAttention(this.sessions, this.spec, layer, shards.localAttention, hidden, numTokens, { cos, sin });
        const attnOut = this.sessions.layers[layer].attnOut;
        if (!attnOut) throw new Error(`layer ${layer} has no MLA attn-out graph`);
        hidden = attnOut.run({
          attn: new ort.Tensor('float32', attn, [numTokens, attn.length / numTokens]),
          hidden: new ort.Tensor('float32', hidden, [numTokens, h]),
        }).hidden_out.data as Float32Array;
      } else {
        // Every shard's o_proj part is added into `hidden` in place.
        shards.attention(layer, hidden, cos, sin, numTokens);
      }
      // The residual stream: every shard's MLP output is added into it in place.
      const route = shards.runMlp(layer, hidden, numTokens);
      if (route) {
        routing.push(route);
        moeLayers.push(layer);
      }
    }
    for (const s of slots) s.cache.numCachedTokens = s.start + s.numTokens;
    return { logits: this.lmHead(batch, slots, hidden), routing, moeLayers, numTokens };
  }

  private lmHead(batch: readonly StepSequence[], slots: readonly StepSlot[], hidden: Float32Array): Float32Array {
    const rows = logitRowsOf(batch, slots);
    if (rows.length === 0) return new Float32Array(0);
    return this.sessions.shards.lmHead(gatherRows(hidden, this.spec.hiddenSize, rows), rows.length);
  }
}
