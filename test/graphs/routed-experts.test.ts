// The routed-experts node on the CPU provider: QMoE's 4-bit layout (MatMulNBits nibbles,
// [E, N, K/2], scales [E, N, K/block]) at the block sizes CUDA takes (64, 128) and the one the
// per-expert plan uses (32) computes what MoE computes with the dequantized weights; and MoE with
// interleaved SwiGLU computes the families' silu(gate x) * (up x) experts.
import { describe, expect, it } from 'vitest';
import { dequantizeInt4, quantizeInt4 } from '../../graphs/ops/quantize.ts';
import { toHalf, castTo, type ActivationType } from '../../graphs/ops/precision.ts';
import { type PackedExperts, packExperts, routedExperts, type RoutedExpertWeights } from '../../graphs/ops/routed-experts.ts';
import type { SwigluWeights } from '../../graphs/ops/swiglu.ts';
import { ort } from '../../kernels/session.ts';
import { f16BitsToF32 } from '../../models/checkpoint/dtype.ts';
import { Rng } from '../../server/engine/rng.ts';
import { openGraph } from '../helpers/graph-run.ts';

const shape = { numExperts: 4, hiddenSize: 128, intermediateSize: 128, topK: 2 };
const T = 5;
const rng = new Rng(99);
const values = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng.nextFloat() - 0.5) * scale);
const { hiddenSize: H, intermediateSize: I, numExperts: E } = shape;
const experts: SwigluWeights[] = Array.from({ length: E }, () => ({
  gate: { data: values(I * H, 0.4), outFeatures: I, inFeatures: H },
  up: { data: values(I * H, 0.4), outFeatures: I, inFeatures: H },
  down: { data: values(H * I, 0.4), outFeatures: H, inFeatures: I },
}));
const x = values(T * H, 2);
const routerProbs = values(T * E, 4);

/** The node's output for x and router probabilities (softmax + top-k inside the op). */
function run(packed: PackedExperts, weights: RoutedExpertWeights, type: ActivationType): Float32Array {
  const session = openGraph((b) => {
    const input = castTo(b, b.input('x', 'float32', ['T', H]), 'float32', type);
    const probs = castTo(b, b.input('probs', 'float32', ['T', E]), 'float32', type);
    b.output(castTo(b, routedExperts(b, input, probs, packed, shape, weights, type), type, 'float32'), 'y', 'float32', ['T', H]);
  });
  try {
    return session.run({ x: new ort.Tensor('float32', x, [T, H]), probs: new ort.Tensor('float32', routerProbs, [T, E]) }).y
      .data as Float32Array;
  } finally {
    session.release();
  }
}

/** softmax -> top-2 -> renormalise -> sum of silu(gate x) * (up x) through down, in float64. */
function reference(ws: SwigluWeights[]): Float32Array {
  const out = new Float32Array(T * H);
  for (let t = 0; t < T; t++) {
    const p = Array.from(routerProbs.subarray(t * E, (t + 1) * E), Math.exp);
    const top = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, 2);
    const total = top.reduce((s, e) => s + p[e], 0);
    for (const e of top) {
      const mid = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        let g = 0;
        let u = 0;
        for (let c = 0; c < H; c++) {
          g += ws[e].gate.data[i * H + c] * x[t * H + c];
          u += ws[e].up.data[i * H + c] * x[t * H + c];
        }
        mid[i] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let c = 0; c < H; c++) {
        let y = 0;
        for (let i = 0; i < I; i++) y += ws[e].down.data[c * I + i] * mid[i];
        out[t * H + c] += (p[e] / total) * y;
      }
    }
  }
  return out;
}

/** The experts as 4-bit blocks of `blockSize` would store them. */
function dequantized(blockSize: number): SwigluWeights[] {
  const dq = (w: SwigluWeights['gate']) => ({ ...w, data: dequantizeInt4(quantizeInt4(w.data, w.outFeatures, w.inFeatures, blockSize)) });
  return experts.map((w) => ({ gate: dq(w.gate), up: dq(w.up), down: dq(w.down) }));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

describe('routed experts in one node', () => {
  it('MoE (float32, interleaved SwiGLU) computes the experts of the families', () => {
    const float: RoutedExpertWeights = { kind: 'float' };
    expect(
      maxDiff(
        run(
          packExperts((j) => experts[j], shape, float),
          float,
          'float32',
        ),
        reference(experts),
      ),
    ).toBeLessThan(1e-5);
  });

  it.each([32, 64, 128])('QMoE with 4-bit blocks of %i equals the dequantized experts (float32, then float16)', (blockSize) => {
    const int4: RoutedExpertWeights = { kind: 'int4', blockSize };
    const packed = packExperts((j) => experts[j], shape, int4);
    const want = reference(dequantized(blockSize));
    const scale = Math.max(...want.map(Math.abs));
    expect(maxDiff(run(packed, int4, 'float32'), want)).toBeLessThan(1e-5 * scale);
    // float16 activations and scales: about 2^-11 relative per rounding, a few roundings deep.
    expect(maxDiff(run(packed, int4, 'float16'), want)).toBeLessThan(4e-3 * scale);
  });

  it('float16 weights hold the float32 ones to half precision (subnormals too)', () => {
    const w = Float32Array.of(1 / 3, -2.5e-5, 65504, 1e-8);
    expect(Array.from(toHalf(w), f16BitsToF32)).toEqual([0.333251953125, -0.000024974346160888672, 65504, 0]);
  });
});
