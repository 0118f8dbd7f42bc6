// RMSNorm: x * 1/sqrt(mean(x^2) + eps) * weight over the last axis.
import type { GraphBuilder } from '../onnx/graph-builder.ts';

export function rmsNorm(b: GraphBuilder, x: string, weight: Float32Array, eps: number, name: string): string {
  const squared = b.op('Mul', [x, x]);
  const meanSquare = b.op('ReduceMean', [squared, b.constInt64([-1])], { keepdims: 1 });
  const invRms = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [meanSquare, b.constFloat(eps)])])]);
  const normed = b.op('Mul', [x, invRms]);
  return b.op('Mul', [normed, b.initializer(`${name}_w`, weight, [weight.length])]);
}
