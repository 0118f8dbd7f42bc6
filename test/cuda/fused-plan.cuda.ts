// GPU-only: the fused plan on ONNX Runtime's CUDA provider (bench/gpu-check.sh runs this with
// `npm run test:cuda`; `npm test` does not). Every session is created with the CPU fallback
// disabled, so a session that opens has every node on the GPU. For all seven families (tiny
// checkpoints shaped for CUDA's QMoE, experts 64 wide):
//   - int4 (QMoE block 64 + MatMulNBits, float16) on CUDA against the same graphs on the CPU
//     provider (which npm test checks against the per-expert plan);
//   - float16 weights (MoE) on CUDA against the per-expert fp32 path;
// logits within FP16_LOGIT_TOLERANCE, at most 1% of expert choices different.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockPrecision } from '../../graphs/moe-block.ts';
import { SYNTHETIC_FAMILIES, type SyntheticFamily } from '../../models/synthetic.ts';
import { cudaShapedOverrides } from '../../models/synthetic-device-presets.ts';
import { cudaPrecision } from '../../runtime/device/device-plan.ts';
import type { StepResult } from '../../runtime/step-batch.ts';
import type { StepRunner } from '../../runtime/step-runner.ts';
import type { SequenceBlocks } from '../../server/engine/block-manager.ts';
import { packExperts, routedExperts } from '../../graphs/ops/routed-experts.ts';
import { openDeviceRunner } from '../helpers/device-model.ts';
import { openGraph } from '../helpers/graph-run.ts';
import type { GraphBuilder } from '../../graphs/onnx/graph-builder.ts';
import { openRunner, testTokens, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';
import { cudaDevice, cudaMissing } from './cuda-available.ts';

const FP16_LOGIT_TOLERANCE = 3e-2;
const DECODE_STEPS = 4;

interface Opened {
  runner: StepRunner;
  newCache(maxTokens: number): SequenceBlocks;
  release(): Promise<void>;
}

async function run(opened: Opened): Promise<StepResult[]> {
  try {
    const caches = [opened.newCache(64), opened.newCache(64)];
    const results = [
      opened.runner.step([
        { tokens: testTokens(24, 1), cache: caches[0], logits: 'all' },
        { tokens: testTokens(9, 2), cache: caches[1], logits: 'all' },
      ]),
    ];
    const next = testTokens(2 * DECODE_STEPS, 3);
    for (let i = 0; i < DECODE_STEPS; i++) {
      results.push(
        opened.runner.step([
          { tokens: [next[2 * i]], cache: caches[0], logits: 'last' },
          { tokens: [next[2 * i + 1]], cache: caches[1], logits: 'last' },
        ]),
      );
    }
    return results;
  } finally {
    await opened.release();
  }
}

function compare(want: StepResult[], got: StepResult[]): { logit: number; choicesDiffer: number; total: number } {
  let logit = 0;
  let choicesDiffer = 0;
  let total = 0;
  want.forEach((w, s) => {
    w.logits.forEach((v, i) => (logit = Math.max(logit, Math.abs(v - got[s].logits[i]))));
    w.routing.forEach((route, l) => {
      route.expertIds.forEach((id, i) => {
        total++;
        if (id !== got[s].routing[l].expertIds[i]) choicesDiffer++;
      });
    });
  });
  return { logit, choicesDiffer, total };
}

const cuda = { provider: 'cuda' as const, deviceId: cudaDevice };
const report: string[] = [];
afterAll(() => console.log(`fused plan on CUDA:\n${report.join('\n')}`));

describe.skipIf(cudaMissing !== null)('fused plan on CUDA', () => {
  it('refuses a graph with a node CUDA cannot run instead of putting it on the CPU', () => {
    // QMoE has no float32 CUDA kernel (graphs/cuda-op-kernels.json); the CPU has one.
    const shape = { numExperts: 2, hiddenSize: 64, intermediateSize: 64, topK: 1 };
    const linear = (rows: number, cols: number) => ({
      data: new Float32Array(rows * cols).fill(0.01),
      outFeatures: rows,
      inFeatures: cols,
    });
    const expert = { gate: linear(64, 64), up: linear(64, 64), down: linear(64, 64) };
    const weights = { kind: 'int4' as const, blockSize: 64 };
    const build = (b: GraphBuilder) => {
      const x = b.input('x', 'float32', ['T', 64]);
      const probs = b.input('probs', 'float32', ['T', 2]);
      b.output(
        routedExperts(
          b,
          x,
          probs,
          packExperts(() => expert, shape, weights),
          shape,
          weights,
          'float32',
        ),
        'y',
        'float32',
        ['T', 64],
      );
    };
    expect(() => openGraph(build).release()).not.toThrow();
    expect(() => openGraph(build, { ...cuda, intraOpThreads: 1 })).toThrow(/fallback to CPU EP has been explicitly disabled/);
  });

  describe.each(SYNTHETIC_FAMILIES.map((family) => ({ family })))('$family', ({ family }: { family: SyntheticFamily }) => {
    let model: TinyModel;
    beforeAll(() => {
      model = writeTinyModel(cudaShapedOverrides(family), 7, family);
    });
    afterAll(() => model.remove());

    const cases: Array<[string, 'per-expert fp32' | 'same graphs on the CPU', BlockPrecision]> = [
      ['int4 QMoE + MatMulNBits, fp16', 'same graphs on the CPU', cudaPrecision('int4')],
      ['fp16 MoE + Gemm', 'per-expert fp32', cudaPrecision('fp32')],
    ];
    // Choices may flip only where fp16 rounding upstream (different kernels: different
    // accumulation order) moves a near-tie: at most 1% of them.
    it.each(cases)('%s on CUDA against the %s', async (name, reference, precision) => {
      const got = await run(await openDeviceRunner(model, precision, cuda));
      const want =
        reference === 'per-expert fp32'
          ? await run(await openRunner(model, 'fp32', 0, 1))
          : await run(await openDeviceRunner(model, precision));
      const c = compare(want, got);
      report.push(
        `${family.padEnd(12)} ${name.padEnd(32)} vs ${reference.padEnd(22)} max|dlogit| ${c.logit.toExponential(2)}  choices differ ${c.choicesDiffer}/${c.total}`,
      );
      expect(c.logit).toBeLessThanOrEqual(FP16_LOGIT_TOLERANCE);
      expect(c.choicesDiffer).toBeLessThanOrEqual(Math.ceil(c.total * 0.01));
    });
  });
});
