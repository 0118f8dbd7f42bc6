// Whether a compiled model will fit in this machine's memory when served: decided before the
// compile's long work starts. 'auto' expert placement replicates only when the copies fit, and
// a model that cannot be served here at the chosen precision is refused with the numbers.
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import type { ExpertPlacement } from './compile-experts.ts';
import type { ModelWeightNames } from './family.ts';
import { usableMemoryBytes } from './memory-limit.ts';
import { estimateModelMemory, residentBytesPerWeight, routedExpertWeights, RUNTIME_BASE_BYTES } from './memory-estimate.ts';
import type { ModelSpec } from './spec.ts';

/** Replicas may take at most this share of the machine's memory for 'auto' to replicate. */
const REPLICA_MEMORY_SHARE = 1 / 8;
/** ... and the whole model with them at most this share (the rest: KV cache, page cache, others). */
const REPLICATED_MODEL_SHARE = 1 / 2;

export interface FitOptions {
  weights: WeightPrecision;
  tensorParallel: number;
  int4BlockSize?: number;
  /** The machine's memory; default usableMemoryBytes() (a container's limit where it has one). */
  memoryBytes?: number;
}

export class ModelTooLargeError extends Error {
  override name = 'ModelTooLargeError';
}

/**
 * 'auto' replicates the routed experts when the copies beyond the first, as ONNX Runtime holds
 * them, fit in an eighth of the machine's memory and the whole model with them in half of it
 * (the bench model in int4: about 0.3 GB more; DeepSeek-V2-Lite: about 10 GB more, so it stays
 * split below about 80 GB). One shard has nothing to place.
 */
export function resolveExpertPlacement(
  spec: ModelSpec,
  weights: WeightPrecision,
  tensorParallel: number,
  requested: ExpertPlacement | 'auto',
  opts: { int4BlockSize?: number; memoryBytes?: number; names?: ModelWeightNames } = {},
): ExpertPlacement {
  if (tensorParallel <= 1) return 'split';
  if (requested !== 'auto') return requested;
  const memory = opts.memoryBytes ?? usableMemoryBytes();
  const extra = routedExpertWeights(spec) * residentBytesPerWeight(weights, opts.int4BlockSize) * (tensorParallel - 1);
  if (extra > memory * REPLICA_MEMORY_SHARE) return 'split';
  if (opts.names === undefined) return 'replicate';
  const whole = estimateModelMemory(spec, opts.names, {
    weights,
    tensorParallel,
    replicateExperts: true,
    int4BlockSize: opts.int4BlockSize,
  });
  return whole.residentWeightBytes + RUNTIME_BASE_BYTES <= memory * REPLICATED_MODEL_SHARE ? 'replicate' : 'split';
}

/** Throws ModelTooLargeError when serving the model would take more memory than the machine has (KV cache not counted). */
export function checkServingFits(spec: ModelSpec, names: ModelWeightNames, placement: ExpertPlacement, opts: FitOptions): void {
  const memory = opts.memoryBytes ?? usableMemoryBytes();
  const estimate = estimateModelMemory(spec, names, {
    weights: opts.weights,
    tensorParallel: opts.tensorParallel,
    replicateExperts: placement === 'replicate',
    int4BlockSize: opts.int4BlockSize,
  });
  const needed = estimate.residentWeightBytes + RUNTIME_BASE_BYTES;
  if (needed <= memory) return;
  const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  const hints = [
    ...(opts.weights === 'fp32' ? ['try --weights int4'] : []),
    ...(opts.weights === 'int4' && (opts.int4BlockSize ?? 64) < 128 && fitsWith({ ...opts, int4BlockSize: 128 })
      ? ['try --int4-block-size 128']
      : []),
    'serve it on a machine with more memory',
    'or pass --skip-memory-check to compile it here for another machine',
  ];
  throw new ModelTooLargeError(
    `${spec.modelType} (${(estimate.checkpointBytes / 2 / 1e9).toFixed(1)}B parameters) at ${opts.weights}` +
      `${placement === 'replicate' ? ' with experts replicated' : ''} needs about ${gib(needed)} of memory to serve ` +
      `(weights as ONNX Runtime holds them ${gib(estimate.residentWeightBytes)} in ${estimate.numSessions} sessions, ` +
      `runtime ${gib(RUNTIME_BASE_BYTES)}, before any KV cache); this machine has ${gib(memory)}. Not compiling: ${hints.join(', ')}.`,
  );

  function fitsWith(other: FitOptions): boolean {
    const e = estimateModelMemory(spec, names, {
      weights: other.weights,
      tensorParallel: other.tensorParallel,
      replicateExperts: false,
      int4BlockSize: other.int4BlockSize,
    });
    return e.residentWeightBytes + RUNTIME_BASE_BYTES <= memory;
  }
}
