// What ONNX Runtime 1.30's CUDA kernels ask of the fused blocks beyond op and type support
// (cuda-op-kernels.json holds that): QMoE's integer path stores weights in CUTLASS's
// column-interleaved layout, whose K tile is 64, so hidden and expert sizes must be multiples
// of 64 (ORT checks this at run time and refuses otherwise); its group-wise scales are laid out
// for groups of 64 or 128 (the TensorRT-LLM fpA_intB kernels it uses); and it runs only with
// float16 / bfloat16 activations.
import type { MoeMlpSpec, ModelSpec } from '../models/spec.ts';
import { isMoe } from '../models/spec.ts';
import type { BlockPrecision } from './moe-block.ts';

export const QMOE_CUDA = {
  /** hidden_size and inter_size: multiples of CUTLASS's interleaved K tile. */
  sizeMultiple: 64,
  blockSizes: [64, 128] as readonly number[],
  activations: ['float16'] as readonly string[],
} as const;

/** Why a layer's routed experts cannot run as CUDA QMoE, or null when they can. */
export function qmoeCudaProblem(spec: ModelSpec, mlp: MoeMlpSpec, blockSize: number, activations: string): string | null {
  const m = QMOE_CUDA.sizeMultiple;
  if (spec.hiddenSize % m !== 0) return `hidden_size ${spec.hiddenSize} is not a multiple of ${m}`;
  if (mlp.expertIntermediateSize % m !== 0) return `the expert intermediate size ${mlp.expertIntermediateSize} is not a multiple of ${m}`;
  if (!QMOE_CUDA.blockSizes.includes(blockSize)) return `block size ${blockSize} is not one of ${QMOE_CUDA.blockSizes.join(', ')}`;
  if (!QMOE_CUDA.activations.includes(activations)) return `QMoE on CUDA needs float16 activations, not ${activations}`;
  return null;
}

/** Every reason the model's fused blocks under `precision` cannot run on CUDA (empty: they can). */
export function cudaPlanProblems(spec: ModelSpec, precision: BlockPrecision): string[] {
  if (precision.experts.kind !== 'int4') return [];
  const blockSize = precision.experts.blockSize;
  const problems = spec.mlp.flatMap((mlp, layer) => {
    if (!isMoe(mlp)) return [];
    const problem = qmoeCudaProblem(spec, mlp, blockSize, precision.activations);
    return problem === null ? [] : [`layer ${layer}: ${problem}`];
  });
  return [...new Set(problems.map((p) => p.replace(/^layer \d+: /, '')))];
}
