// What the KV cache stores per token and layer, by attention kind, for any cache layout
// (contiguous per sequence or paged): a key row and a value row of fixed widths.
//   standard / GQA : keys and values of every kv head, numKvHeads * headDim each
//   MLA (DeepSeek-V2/V3): ONE row of kv_lora_rank + qk_rope_head_dim (the normalised latent
//                    and the rotated shared k_pe), no value row; keys and values of each
//                    head are never materialised
import type { ModelSpec } from '../../models/spec.ts';
import type { KvCacheShape } from './kv-cache.ts';

export function kvCacheShape(spec: ModelSpec): KvCacheShape {
  if (spec.mla) return { numLayers: spec.numLayers, keyWidth: spec.mla.kvLoraRank + spec.mla.qkRopeHeadDim, valueWidth: 0 };
  const width = spec.numKvHeads * spec.headDim;
  return { numLayers: spec.numLayers, keyWidth: width, valueWidth: width };
}

/** Bytes per token (all layers, f32) of this model's cache and of a plain per-head K/V cache. */
export function kvBytesPerToken(spec: ModelSpec): { cache: number; plainKv: number } {
  const shape = kvCacheShape(spec);
  const cache = 4 * spec.numLayers * (shape.keyWidth + shape.valueWidth);
  // A plain cache of an MLA model keeps every head's expanded key (nope + rope) and value.
  const plainRow = spec.mla ? spec.numHeads * (spec.headDim + spec.mla.vHeadDim) : shape.keyWidth + shape.valueWidth;
  return { cache, plainKv: 4 * spec.numLayers * plainRow };
}
