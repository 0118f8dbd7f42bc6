// What a model needs before anything is written: the checkpoint's bytes, the compiled graphs'
// bytes on disk, and the resident memory of a server holding them. compile refuses a model
// whose serving memory exceeds the machine's before the long work starts; bench:scale checks
// disk and memory with the same numbers.
//
// Resident int4 weights, as ONNX Runtime 1.30 holds a MatMulNBits weight (measured, see
// bench/RESULTS.md): its prepacked copy (the 4-bit codes, an f32 scale and an f32 block sum per
// block: 0.5 + 8 / block bytes a weight) plus the original scales, which it keeps (4 / block).
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { INT4_BLOCK_SIZE } from '../graphs/ops/quantize.ts';
import { expectedTensors } from './checkpoint/weight-shapes.ts';
import type { ModelWeightNames } from './family.ts';
import { isMoe, type ModelSpec } from './spec.ts';

export interface MemoryEstimateOptions {
  weights: WeightPrecision;
  tensorParallel: number;
  /** Replicated experts are held once per shard. */
  replicateExperts: boolean;
  int4BlockSize?: number;
}

export interface ModelMemoryEstimate {
  /** All weights of the checkpoint at 2 bytes (BF16/F16). */
  checkpointBytes: number;
  /** Weights that compile to 4-bit at int4 (every Linear but MLA's kv_b_proj and the routers). */
  quantisableWeights: number;
  /** The embedding table, kept f32 on disk and read a row at a time. */
  embeddingWeights: number;
  /** The compiled directory's size. */
  compiledBytes: number;
  /** Resident memory of the weights once every session is open. */
  residentWeightBytes: number;
  /** ONNX Runtime sessions the server opens (each costs some fixed memory). */
  numSessions: number;
}

/** Fixed resident memory per ONNX Runtime session (kernels, plans, allocator state), measured with arenas off. */
export const SESSION_OVERHEAD_BYTES = 100 * 1024;
/** The server besides the model: Node, the JS heap, ONNX Runtime's code. */
export const RUNTIME_BASE_BYTES = 384 * 2 ** 20;

export function estimateModelMemory(spec: ModelSpec, names: ModelWeightNames, opts: MemoryEstimateOptions): ModelMemoryEstimate {
  let all = 0;
  let quantisable = 0;
  let routed = 0;
  let embedding = 0;
  for (const t of expectedTensors(spec, names)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    all += n;
    if (t.role === 'embedding') embedding += n;
    const kvB = t.name.endsWith('kv_b_proj.weight');
    if ((t.role === 'linear' || t.role === 'lm-head') && !kvB) {
      quantisable += n;
      if (t.name.includes('.experts.')) routed += n;
    }
  }
  const fp32 = all - quantisable - embedding;
  const block = opts.int4BlockSize ?? INT4_BLOCK_SIZE;
  const onDisk = opts.weights === 'int4' ? 0.5 + 4 / block : 4;
  const resident = residentBytesPerWeight(opts.weights, block);
  const replicas = opts.replicateExperts ? opts.tensorParallel - 1 : 0;
  const numSessions = countSessions(spec, opts.tensorParallel);
  return {
    checkpointBytes: 2 * all,
    quantisableWeights: quantisable,
    embeddingWeights: embedding,
    compiledBytes: quantisable * onDisk + 4 * (fp32 + embedding),
    residentWeightBytes: (quantisable + replicas * routed) * resident + 4 * fp32 + numSessions * SESSION_OVERHEAD_BYTES,
    numSessions,
  };
}

/** Resident bytes of one quantisable weight once its session is open. */
export function residentBytesPerWeight(weights: WeightPrecision, int4BlockSize = INT4_BLOCK_SIZE): number {
  return weights === 'int4' ? 0.5 + 12 / int4BlockSize : 4;
}

/** Routed-expert weights of the model (all layers). */
export function routedExpertWeights(spec: ModelSpec): number {
  return spec.mlp.reduce((n, m) => n + (isMoe(m) ? m.numRoutedExperts * 3 * spec.hiddenSize * m.expertIntermediateSize : 0), 0);
}

/** Serving memory of the model without its KV cache: the weights as held, the sessions, the runtime. */
export function servingMemoryBytes(spec: ModelSpec, names: ModelWeightNames, opts: MemoryEstimateOptions): number {
  return estimateModelMemory(spec, names, opts).residentWeightBytes + RUNTIME_BASE_BYTES;
}

/** Per layer and shard: attention in/out, mlp-in and a slice of every routed expert; the LM head. */
function countSessions(spec: ModelSpec, shards: number): number {
  const perLayer = spec.mlp.reduce((n, m) => n + (isMoe(m) ? m.numRoutedExperts : 0) + 3, 0);
  return shards * (perLayer + 3);
}
