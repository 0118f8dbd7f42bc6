// The bench model's matmul time per token at a set of measured kernel rates, everything else
// free: the floor under any step, for moe-server (ONNX Runtime's rates) and llama.cpp (ggml's).
// Routed and shared experts run at the expert shapes' rates (1024 x 704 in, 704 x 1024 out),
// everything else (attention, the dense MLP, the LM head) at the 1024 x 4096 layer's.
import type { ModelSpec } from '../../models/spec.ts';
import { isMoe } from '../../models/spec.ts';
import { activeParametersPerToken } from '../active-bytes.ts';

export interface MacsByShape {
  /** gate and up projections of the routed and shared experts a token uses */
  expertIn: number;
  /** their down projections */
  expertOut: number;
  /** every other matmul; the LM head is `lmHead` of it */
  rest: number;
  lmHead: number;
}

export function macsByShape(spec: ModelSpec): MacsByShape {
  const h = spec.hiddenSize;
  let expertWidth = 0;
  for (const mlp of spec.mlp) {
    if (isMoe(mlp)) expertWidth += mlp.numExpertsPerToken * mlp.expertIntermediateSize + mlp.sharedIntermediateSize;
  }
  const { quantisable, router } = activeParametersPerToken(spec);
  const expertIn = 2 * h * expertWidth;
  const expertOut = h * expertWidth;
  return { expertIn, expertOut, rest: quantisable + router - expertIn - expertOut, lmHead: spec.vocabSize * h };
}

/** MAC/s of a kind of matmul: the expert shapes' and the large layer's. */
export interface ShapeRates {
  expertIn: number;
  expertOut: number;
  rest: number;
}

/**
 * Milliseconds of matmuls per token: decode computes the LM head for every token, a prefill
 * only for its last position (left out here).
 */
export function matmulMsPerToken(m: MacsByShape, rates: ShapeRates, prefill: boolean): number {
  const rest = prefill ? m.rest - m.lmHead : m.rest;
  return (m.expertIn / rates.expertIn + m.expertOut / rates.expertOut + rest / rates.rest) * 1000;
}
