// What the KV cache stores per token and layer, by attention kind:
//   standard / GQA : keys and values of every kv head, headDim each
//   MLA (DeepSeek-V2/V3): ONE row of kv_lora_rank + qk_rope_head_dim (the normalised latent
//                    and the rotated shared k_pe) and no value row; keys and values of each
//                    head are never materialised
import type { ModelSpec } from '../../models/spec.ts';
import { KvCachePool, type KvCacheShape } from './kv-cache.ts';

/**
 * The whole model's cache shape, or with `kvHeads` [start, end) the part one tensor-parallel
 * shard holds: the planes of its own kv heads (MLA's single latent row counts as one head).
 */
export function kvCacheShape(spec: ModelSpec, kvHeads?: [number, number]): KvCacheShape {
  const numKvHeads = (whole: number) => (kvHeads ? kvHeads[1] - kvHeads[0] : whole);
  if (spec.mla)
    return {
      numLayers: spec.numLayers,
      numKvHeads: numKvHeads(1),
      keyHeadDim: spec.mla.kvLoraRank + spec.mla.qkRopeHeadDim,
      valueHeadDim: 0,
    };
  return { numLayers: spec.numLayers, numKvHeads: numKvHeads(spec.numKvHeads), keyHeadDim: spec.headDim, valueHeadDim: spec.headDim };
}

/** Bytes per token (all layers, f32) of this model's cache and of a plain per-head K/V cache. */
export function kvBytesPerToken(spec: ModelSpec): { cache: number; plainKv: number } {
  const cache = KvCachePool.bytesPerToken(kvCacheShape(spec));
  // A plain cache of an MLA model keeps every head's expanded key (nope + rope) and value.
  const plainKv = spec.mla ? 4 * spec.numLayers * spec.numHeads * (spec.headDim + spec.mla.vHeadDim) : cache;
  return { cache, plainKv };
}
