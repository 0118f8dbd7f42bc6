// Rotary position embedding in the Hugging Face (rotate_half, non-interleaved) layout.
// cos and sin are computed by the engine per token position (kernels/rope-tables.ts) and fed
// as inputs, so one graph serves every position and every scaling scheme.
import type { GraphBuilder } from '../onnx/graph-builder.ts';

/**
 * @param x [tokens, heads, headDim]
 * @param cos [tokens, 1, headDim / 2] (already unsqueezed; shared by q and k)
 */
export function applyRope(b: GraphBuilder, x: string, cos: string, sin: string, headDim: number): string {
  const half = headDim / 2;
  const [x1, x2] = b.node('Split', [x, b.constInt64([half, half])], 2, { axis: -1 });
  const first = b.op('Sub', [b.op('Mul', [x1, cos]), b.op('Mul', [x2, sin])]);
  const second = b.op('Add', [b.op('Mul', [x2, cos]), b.op('Mul', [x1, sin])]);
  return b.op('Concat', [first, second], { axis: -1 });
}
