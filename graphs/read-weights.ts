// Checkpoint tensors -> the weights the graph builders take: read as f32, shape-checked.
import type { SwigluWeightNames } from '../models/family.ts';
import type { LinearWeight } from './ops/linear.ts';
import type { SwigluWeights } from './ops/swiglu.ts';

/** Reads one checkpoint tensor as f32, checking its shape. */
export type ReadWeight = (name: string, shape: number[]) => Float32Array;

export function readLinear(read: ReadWeight, name: string, outFeatures: number, inFeatures: number, biasName?: string): LinearWeight {
  const data = read(name, [outFeatures, inFeatures]);
  const bias = biasName ? read(biasName, [outFeatures]) : undefined;
  return { data, outFeatures, inFeatures, bias };
}

export function readSwiglu(read: ReadWeight, names: SwigluWeightNames, hidden: number, width: number): SwigluWeights {
  return {
    gate: readLinear(read, names.gate, width, hidden),
    up: readLinear(read, names.up, width, hidden),
    down: readLinear(read, names.down, hidden, width),
  };
}
