// Where the model runs and in what precision. `--device cpu` keeps the per-expert plan (one
// small graph per chosen expert: cheapest on CPU cores); `--device cuda[:N]` runs the fused plan
// (runtime/device/): one attention-input graph and one fused feed-forward block per layer and
// the LM head on the GPU, the experts in float16 (4-bit QMoE for --weights int4, float16 MoE
// for --weights fp32), attention over the paged KV cache on the CPU.
import { cudaPlanProblems, QMOE_CUDA } from '../../graphs/cuda-constraints.ts';
import type { BlockPrecision } from '../../graphs/moe-block.ts';
import type { WeightPrecision } from '../../graphs/ops/linear.ts';
import type { ModelSpec } from '../../models/spec.ts';

export type Device = { kind: 'cpu' } | { kind: 'cuda'; id: number };

export function deviceName(device: Device): string {
  return device.kind === 'cpu' ? 'cpu' : `cuda:${device.id}`;
}

/** QMoE group size on CUDA: its kernels take 64 or 128 (graphs/cuda-constraints.ts). */
export const CUDA_INT4_BLOCK_SIZE = QMOE_CUDA.blockSizes[0];

/** The fused blocks' precision on CUDA for --weights. */
export function cudaPrecision(weights: WeightPrecision): BlockPrecision {
  return weights === 'int4'
    ? { activations: 'float16', experts: { kind: 'int4', blockSize: CUDA_INT4_BLOCK_SIZE }, projections: 'int4' }
    : { activations: 'float16', experts: { kind: 'float' }, projections: 'float' };
}

export interface ResolvedPrecision {
  precision: BlockPrecision;
  /** Why the precision differs from what --weights asked for, if it does (logged at startup). */
  notes: string[];
}

/**
 * cudaPrecision, except that a model whose shapes CUDA's QMoE cannot take (sizes not multiples
 * of 64, such as the tiny demo model) gets float16 MoE experts instead, and says so.
 */
export function resolveCudaPrecision(spec: ModelSpec, weights: WeightPrecision): ResolvedPrecision {
  const wanted = cudaPrecision(weights);
  const problems = cudaPlanProblems(spec, wanted);
  if (problems.length === 0) return { precision: wanted, notes: [] };
  return {
    precision: { ...wanted, experts: { kind: 'float' } },
    notes: [`routed experts run as float16 MoE, not 4-bit QMoE: ${problems.join('; ')}`],
  };
}

/**
 * The fused plan on the CPU provider (tests, benchmarks): float32 activations; 4-bit experts
 * and projections for --weights int4, with MatMulNBits' fast int8-activation kernels.
 */
export function cpuFusedPrecision(weights: WeightPrecision): BlockPrecision {
  return weights === 'int4'
    ? { activations: 'float32', experts: { kind: 'int4', blockSize: 32 }, projections: 'int4', int4AccuracyLevel: 4 }
    : { activations: 'float32', experts: { kind: 'float' }, projections: 'float' };
}

/** In words, for logs and /v1/models. */
export function describePrecision(p: BlockPrecision): string {
  const experts = p.experts.kind === 'int4' ? `4-bit QMoE (blocks of ${p.experts.blockSize})` : `${p.activations} MoE`;
  const projections = p.projections === 'int4' ? '4-bit MatMulNBits' : `${p.activations} weights`;
  return `routed experts ${experts}, shared/dense MLP and attention projections ${projections}, ${p.activations} expert activations, float32 router and residual`;
}
