// The engine side of Multi-head Latent Attention (DeepSeek-V2/V3) for one layer of a step:
// one mla-in call for every token of the step gives the queries, already in latent space, and
// each token's cache row (kvLoraRank + qkRopeHeadDim values: the normalised latent and the
// rotated k_pe, kv-cache-shape.ts); the paged attention then stores the rows and attends.
import { ort } from '../../kernels/session.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { ModelSessions } from '../model-sessions.ts';
import type { AttentionShard } from './attention-shard.ts';

const NO_VALUES = new Float32Array(0);

/** Each head's attended latent, [numTokens, numHeads * kvLoraRank], for the layer's attn-out. */
export function runMlaAttention(
  sessions: ModelSessions,
  spec: ModelSpec,
  layer: number,
  attention: AttentionShard,
  hidden: Float32Array,
  numTokens: number,
  rope: { cos: Float32Array; sin: Float32Array },
): Float32Array {
  const mla = spec.mla;
  const session = sessions.layers[layer].mlaIn;
  if (!mla || !session) throw new Error(`layer ${layer} has no MLA graphs`);
  const half = mla.qkRopeHeadDim / 2;
  const projected = session.run({
    hidden: new ort.Tensor('float32', hidden, [numTokens, spec.hiddenSize]),
    cos: new ort.Tensor('float32', rope.cos, [numTokens, half]),
    sin: new ort.Tensor('float32', rope.sin, [numTokens, half]),
  });
  return attention.pagedAttention.run(
    layer,
    attention.planFor(0, numTokens),
    projected.q.data as Float32Array,
    projected.kv.data as Float32Array,
    NO_VALUES,
    numTokens,
  );
}
