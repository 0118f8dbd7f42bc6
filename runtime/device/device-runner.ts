// One forward step of the fused ("device") plan. Per decoder layer:
//   attn-in (device)        : RMSNorm, q/k/v projections, RoPE -> q/k/v rows to the host
//   attention (CPU)         : k/v written into the paged cache, attention over it (WebAssembly
//                             kernel for decoding tokens, the attention-core graph for prompt chunks)
//   block (device)          : o_proj, post-attention norm, router, gating, all routed experts
//                             (MoE / QMoE), shared experts, residual -> hidden rows and routing
// then the LM head (device). Two device calls per layer and one for the head, whatever the
// batch: on a GPU, where every call pays a fixed cost and a host round trip, that beats the
// per-expert plan's dozens of calls per layer (graph-calls.ts counts both).
import { ort } from '../../kernels/session.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { KvCacheSize } from '../attention/attention-shard.ts';
import type { KvCachePool } from '../attention/kv-cache.ts';
import { fillRopeTables } from '../attention/rope-tables.ts';
import { gatherRows } from '../moe/dispatch.ts';
import type { RoutingResult } from '../moe/router.ts';
import { blocksCovering, layOutStep, logitRowsOf, type StepResult, type StepSequence, type StepSlot } from '../step-batch.ts';
import type { DeviceSessions } from './device-sessions.ts';

const NO_VALUES = new Float32Array(0);

export class DeviceRunner {
  readonly spec: ModelSpec;
  readonly kvPool: KvCachePool;

  constructor(
    readonly sessions: DeviceSessions,
    cache: KvCacheSize,
  ) {
    this.spec = sessions.manifest.spec;
    this.kvPool = sessions.attention.attachCache(cache);
  }

  step(batch: StepSequence[]): StepResult {
    const slots = layOutStep(batch);
    for (const s of slots) {
      const needed = blocksCovering(s, this.kvPool.blockSize);
      if (s.cache.blockIds.length < needed)
        throw new Error(`step: a sequence holds ${s.cache.blockIds.length} cache blocks but needs ${needed}`);
    }
    this.sessions.attention.beginStep(slots);
    const numTokens = slots.reduce((n, s) => n + s.numTokens, 0);
    let hidden = this.sessions.embeddings.embedStep(batch, slots, numTokens, this.spec.vocabSize);
    const rope = this.ropeTables(slots, numTokens);
    const routing: RoutingResult[] = [];
    const moeLayers: number[] = [];
    for (let layer = 0; layer < this.spec.numLayers; layer++) {
      const attn = this.attend(layer, hidden, numTokens, rope);
      const out = this.sessions.blocks[layer].run({
        hidden: new ort.Tensor('float32', hidden, [numTokens, this.spec.hiddenSize]),
        attn: new ort.Tensor('float32', attn, [numTokens, attn.length / numTokens]),
      });
      hidden = out.hidden_out.data as Float32Array;
      if (out.expert_ids) {
        routing.push({
          expertIds: Int32Array.from(out.expert_ids.data as BigInt64Array, Number),
          weights: out.expert_weights.data as Float32Array,
        });
        moeLayers.push(layer);
      }
    }
    for (const s of slots) s.cache.numCachedTokens = s.start + s.numTokens;
    return { logits: this.lmHead(batch, slots, hidden), routing, moeLayers, numTokens };
  }

  /** The layer's attention output [numTokens, heads x (head dim | latent rank)]. */
  private attend(layer: number, hidden: Float32Array, numTokens: number, rope: { cos: Float32Array; sin: Float32Array }): Float32Array {
    const attention = this.sessions.attention;
    if (!this.spec.mla) return attention.attend(layer, 0, numTokens, hidden, rope.cos, rope.sin);
    const half = this.spec.rope.rotaryDim / 2;
    const projected = this.sessions.attnIn[layer].run({
      hidden: new ort.Tensor('float32', hidden, [numTokens, this.spec.hiddenSize]),
      cos: new ort.Tensor('float32', rope.cos, [numTokens, half]),
      sin: new ort.Tensor('float32', rope.sin, [numTokens, half]),
    });
    const plan = attention.planFor(0, numTokens);
    return attention.pagedAttention.run(
      layer,
      plan,
      projected.q.data as Float32Array,
      projected.kv.data as Float32Array,
      NO_VALUES,
      numTokens,
    );
  }

  private ropeTables(slots: readonly StepSlot[], numTokens: number): { cos: Float32Array; sin: Float32Array } {
    // rotaryDim == headDim except for MLA, whose rope covers only qk_rope_head_dim.
    const cos = new Float32Array(numTokens * (this.spec.rope.rotaryDim / 2));
    const sin = new Float32Array(numTokens * (this.spec.rope.rotaryDim / 2));
    for (const s of slots) {
      const positions = Array.from({ length: s.numTokens }, (_, i) => s.start + i);
      fillRopeTables(this.spec.rope, positions, s.start + s.numTokens, cos, sin, s.row);
    }
    return { cos, sin };
  }

  private lmHead(batch: readonly StepSequence[], slots: readonly StepSlot[], hidden: Float32Array): Float32Array {
    const h = this.spec.hiddenSize;
    const rows = logitRowsOf(batch, slots);
    if (rows.length === 0) return new Float32Array(0);
    const x = gatherRows(hidden, h, rows);
    return this.sessions.lmHead.run({ hidden: new ort.Tensor('float32', x, [rows.length, h]) }).logits.data as Float32Array;
  }
}
