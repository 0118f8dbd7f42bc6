// The engine side of Multi-head Latent Attention (DeepSeek-V2/V3) for one layer of a step:
// one mla-in call for every token of the step (queries already in latent space, and the
// cache rows), then per sequence: append the rows to its cache and attend over them. The
// cache holds one row of kvLoraRank + qkRopeHeadDim per token and layer (kv-cache-shape.ts).
import { ort } from '../../kernels/session.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { SequenceKvCache } from './kv-cache.ts';
import type { ModelSessions } from './model-sessions.ts';

/** The slice of a step one sequence owns (as laid out by the model runner). */
export interface MlaSlot {
  seq: { cache: SequenceKvCache };
  row: number;
  numTokens: number;
  start: number;
  mask: Float32Array;
}

/** Each head's attended latent, [numTokens, numHeads * kvLoraRank], for the layer's attn-out. */
export function runMlaAttention(
  sessions: ModelSessions,
  spec: ModelSpec,
  layer: number,
  slots: MlaSlot[],
  hidden: Float32Array,
  numTokens: number,
  rope: { cos: Float32Array; sin: Float32Array },
): Float32Array {
  const mla = spec.mla;
  const session = sessions.layers[layer].mlaIn;
  if (!mla || !session) throw new Error(`layer ${layer} has no MLA graphs`);
  const rowWidth = mla.kvLoraRank + mla.qkRopeHeadDim;
  const half = mla.qkRopeHeadDim / 2;
  const projected = session.run({
    hidden: new ort.Tensor('float32', hidden, [numTokens, spec.hiddenSize]),
    cos: new ort.Tensor('float32', rope.cos, [numTokens, half]),
    sin: new ort.Tensor('float32', rope.sin, [numTokens, half]),
  });
  const q = projected.q.data as Float32Array;
  const rows = projected.kv.data as Float32Array;
  const qWidth = spec.numHeads * rowWidth;
  const outWidth = spec.numHeads * mla.kvLoraRank;
  const out = new Float32Array(numTokens * outWidth);
  const empty = new Float32Array(0);
  for (const s of slots) {
    s.seq.cache.write(layer, s.start, rows.subarray(s.row * rowWidth, (s.row + s.numTokens) * rowWidth), empty);
    const total = s.start + s.numTokens;
    const result = sessions.attentionCore.run({
      q: new ort.Tensor('float32', q.subarray(s.row * qWidth, (s.row + s.numTokens) * qWidth), [s.numTokens, spec.numHeads, rowWidth]),
      cache: new ort.Tensor('float32', s.seq.cache.view(layer, total).keys, [total, rowWidth]),
      mask: new ort.Tensor('float32', s.mask, [s.numTokens, total]),
    });
    out.set(result.out.data as Float32Array, s.row * outWidth);
  }
  return out;
}
