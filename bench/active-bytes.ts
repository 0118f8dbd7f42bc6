// Weight bytes one decoded token must read: every weight of attention, the dense MLPs, the
// routers, the k routed experts it is sent to, the shared experts and the LM head. The
// embedding row and norms are negligible and left out.
import type { WeightPrecision } from '../kernels/ops/linear.ts';
import { INT4_BLOCK_SIZE } from '../kernels/ops/quantize.ts';
import { isMoe, type ModelSpec } from '../models/spec.ts';

/** 4-bit: half a byte per weight plus an f32 scale per block (symmetric, no zero points). */
const INT4_BYTES_PER_WEIGHT = 0.5 + 4 / INT4_BLOCK_SIZE;

export function activeParametersPerToken(spec: ModelSpec): { quantisable: number; router: number } {
  const h = spec.hiddenSize;
  const attention = h * spec.headDim * (2 * spec.numHeads + 2 * spec.numKvHeads);
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

export function activeWeightBytesPerToken(spec: ModelSpec, weights: WeightPrecision): number {
  const { quantisable, router } = activeParametersPerToken(spec);
  // The router always stays fp32.
  return quantisable * (weights === 'int4' ? INT4_BYTES_PER_WEIGHT : 4) + router * 4;
}
