// SwiGLU MLP, the expert and dense-MLP shape of every family here:
// down(silu(gate x) * up x). Gate and up share one matmul over their stacked weights.
import type { GraphBuilder } from '../onnx/graph-builder.ts';
import { concatLinear, linear, type LinearOptions, type LinearWeight } from './linear.ts';

export interface SwigluWeights {
  gate: LinearWeight;
  up: LinearWeight;
  down: LinearWeight;
}

export function swiglu(b: GraphBuilder, x: string, w: SwigluWeights, name: string, opts: LinearOptions): string {
  const width = w.gate.outFeatures;
  const gateUp = linear(b, x, concatLinear([w.gate, w.up]), `${name}_gate_up`, opts);
  const [gate, up] = b.node('Split', [gateUp, b.constInt64([width, width])], 2, { axis: -1 });
  const silu = b.op('Mul', [gate, b.op('Sigmoid', [gate])]);
  return linear(b, b.op('Mul', [silu, up]), w.down, `${name}_down`, opts);
}
