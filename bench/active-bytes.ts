// Weight bytes one decoded token must read: every weight of attention, the dense MLPs, the
// routers, the k routed experts it is sent to, the shared experts and the LM head. The
// embedding row and norms are negligible and left out.
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { INT4_BLOCK_SIZE } from '../graphs/ops/quantize.ts';
import { isMoe, type ModelSpec } from '../models/spec.ts';

/** 4-bit: half a byte per weight plus an f32 scale per block (symmetric, no zero points). */
const INT4_BYTES_PER_WEIGHT = 0.5 + 4 / INT4_BLOCK_SIZE;

export function activeParametersPerToken(spec: ModelSpec): { quantisable: number; router: number } {
  const h = spec.hiddenSize;
  const attention = spec.mla ? mlaAttentionParameters(spec) : h * spec.headDim * (2 * spec.numHeads + 2 * spec.numKvHeads);
  let quantisable = spec.numLayers * attention + spec.vocabSize * h;
  let router = 0;
  for (const mlp of spec.mlp) {
    if (!isMoe(mlp)) {
      quantisable += 3 * h * mlp.intermediateSize;
      continue;
    }
    router += mlp.numRoutedExperts * h;
    quantisable += 3 * h * (mlp.numExpertsPerToken * mlp.expertIntermediateSize + mlp.sharedIntermediateSize);
  }
  return { quantisable, router };
}

/** q (direct or through q_lora_rank), kv_a, all of kv_b (its key and value halves are both used) and o_proj. */
function mlaAttentionParameters(spec: ModelSpec): number {
  const mla = spec.mla;
  if (!mla) return 0;
  const { hiddenSize: h, numHeads: heads } = spec;
  const qWidth = heads * (mla.qkNopeHeadDim + mla.qkRopeHeadDim);
  const q = mla.qLoraRank === null ? h * qWidth : h * mla.qLoraRank + mla.qLoraRank * qWidth;
  const kvA = h * (mla.kvLoraRank + mla.qkRopeHeadDim);
  const kvB = mla.kvLoraRank * heads * (mla.qkNopeHeadDim + mla.vHeadDim);
  return q + kvA + kvB + heads * mla.vHeadDim * h;
}

export function activeWeightBytesPerToken(spec: ModelSpec, weights: WeightPrecision): number {
  const { quantisable, router } = activeParametersPerToken(spec);
  // The router always stays fp32.
  return quantisable * (weights === 'int4' ? INT4_BYTES_PER_WEIGHT : 4) + router * 4;
}
