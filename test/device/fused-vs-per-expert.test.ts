// The fused device plan (one graph call per layer for o_proj + norm + router + gating + every
// expert + residual; runtime/device/) against the per-expert plan (runtime/model-runner.ts:
// mlp-in, the TypeScript router, one call per chosen expert) for all seven families, on the
// CPU provider, with tiny checkpoints through the real writer, compilers and ONNX Runtime:
//   fp32                  : logits within 1e-4, identical expert choices, weights within 1e-5;
//   fp16 + int4 (QMoE and MatMulNBits with float16 activations, the CUDA formulation; CPU
//   runs them in float16 too) against the per-expert int4 path with the same 4-bit weights
//   (block 32, exact accuracy level): logits within FP16_LOGIT_TOLERANCE, identical expert
//   choices except where the per-expert path's selection scores are within fp16 rounding of a
//   tie (their router logits are read from its mlp-in calls);
//   fp16 with float16 weights (MoE): the same bounds. (The CPU has no float16 MoE/Gemm kernels:
//   ONNX Runtime casts those nodes to float32, so this checks the graph, not fp16 rounding.)
// Over a two-sequence batch: a 24-token and a 9-token prompt in one step, then 4 decode steps.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockPrecision } from '../../graphs/moe-block.ts';
import type { SyntheticFamily } from '../../models/synthetic.ts';
import { SYNTHETIC_FAMILIES } from '../../models/synthetic.ts';
import type { GraphSession, Outputs } from '../../kernels/session.ts';
import type { ShardSessions } from '../../runtime/tp/shard-sessions.ts';
import type { GatingConfig } from '../../runtime/moe/router.ts';
import type { StepResult, StepSequence } from '../../runtime/step-batch.ts';
import { openDeviceRunner, PRECISIONS } from '../helpers/device-model.ts';
import { nearTie, routingMargin } from '../helpers/routing-margin.ts';
import { openRunner, testTokens, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const FP32_LOGIT_TOLERANCE = 1e-4;
const FP32_WEIGHT_TOLERANCE = 1e-5;
/** Logits are O(5) here; float16 carries 11 significant bits (2^-11 ~ 4.9e-4 relative) per value. */
const FP16_LOGIT_TOLERANCE = 2e-2;
/** Relative gap under which two selection scores count as tied after fp16 rounding upstream. */
const FP16_TIE = 4e-3;
const DECODE_STEPS = 4;

interface RunRecord {
  results: StepResult[];
  /** Per step, per MoE layer (in order): the per-expert path's router logits [T, E]. */
  routerLogits: Float32Array[][];
  gating: GatingConfig[];
}

/** Runs the same batch through a runner: two prompts in one step, then decode steps on greedy tokens of the first runner. */
async function runBatch(
  step: (batch: StepSequence[]) => StepResult,
  newCache: (max: number) => StepSequence['cache'],
  tokens: number[][],
): Promise<StepResult[]> {
  const caches = [newCache(64), newCache(64)];
  const results = [
    step([
      { tokens: tokens[0], cache: caches[0], logits: 'all' },
      { tokens: tokens[1], cache: caches[1], logits: 'all' },
    ]),
  ];
  for (let i = 0; i < DECODE_STEPS; i++) {
    const next = tokens[2 + i];
    results.push(
      step([
        { tokens: [next[0]], cache: caches[0], logits: 'last' },
        { tokens: [next[1]], cache: caches[1], logits: 'last' },
      ]),
    );
  }
  return results;
}

function inputs(seed: number): number[][] {
  const decode = testTokens(2 * DECODE_STEPS, seed + 2);
  return [testTokens(24, seed), testTokens(9, seed + 1), ...Array.from({ length: DECODE_STEPS }, (_, i) => decode.slice(2 * i, 2 * i + 2))];
}

/** The per-expert path, recording each MoE layer's router logits from its mlp-in calls. */
async function perExpert(model: TinyModel, weights: 'fp32' | 'int4', tokens: number[][]): Promise<RunRecord> {
  const opened = await openRunner(model, weights, 0, 1);
  try {
    const { local } = opened.runner.sessions.shards as unknown as { local: ShardSessions };
    const logits: Float32Array[] = [];
    const moeLayers = local.layers.filter((l) => l.gating !== null);
    for (const layer of moeLayers) {
      const session: GraphSession = layer.mlpIn;
      const run = session.run.bind(session);
      session.run = (feeds): Outputs => {
        const out = run(feeds);
        logits.push((out.router_logits.data as Float32Array).slice());
        return out;
      };
    }
    const results = await runBatch(
      (b) => opened.runner.step(b),
      (n) => opened.newCache(n),
      tokens,
    );
    const perStep = results.map((_, s) => logits.slice(s * moeLayers.length, (s + 1) * moeLayers.length));
    return { results, routerLogits: perStep, gating: moeLayers.map((l) => l.gating!) };
  } finally {
    await opened.release();
  }
}

async function fused(model: TinyModel, precision: BlockPrecision, tokens: number[][]): Promise<StepResult[]> {
  const opened = await openDeviceRunner(model, precision);
  try {
    return await runBatch(
      (b) => opened.runner.step(b),
      (n) => opened.newCache(n),
      tokens,
    );
  } finally {
    await opened.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Largest logit difference, and how many expert choices differ outside / inside near-ties. */
function compare(
  ref: RunRecord,
  got: StepResult[],
  tie: number,
): { logit: number; weight: number; differ: number; tied: number; total: number } {
  let logit = 0;
  let weight = 0;
  let differ = 0;
  let tied = 0;
  let total = 0;
  ref.results.forEach((r, s) => {
    logit = Math.max(logit, maxAbsDiff(r.logits, got[s].logits));
    expect(got[s].moeLayers).toEqual(r.moeLayers);
    r.routing.forEach((route, l) => {
      const cfg = ref.gating[l];
      const k = cfg.topK;
      for (let t = 0; t < r.numTokens; t++) {
        total++;
        const want = Array.from(route.expertIds.subarray(t * k, (t + 1) * k));
        const have = Array.from(got[s].routing[l].expertIds.subarray(t * k, (t + 1) * k));
        if (want.join() === have.join()) {
          for (let j = 0; j < k; j++) weight = Math.max(weight, Math.abs(route.weights[t * k + j] - got[s].routing[l].weights[t * k + j]));
        } else if (nearTie(routingMargin(ref.routerLogits[s][l], t, cfg), tie)) tied++;
        else differ++;
      }
    });
  });
  return { logit, weight, differ, tied, total };
}

const report: string[] = [];
afterAll(() => console.log(`fused vs per-expert (CPU provider):\n${report.join('\n')}`));

describe.each(SYNTHETIC_FAMILIES.map((family) => ({ family })))(
  '$family: fused blocks against the per-expert path',
  ({ family }: { family: SyntheticFamily }) => {
    const tokens = inputs(11);
    let model: TinyModel;
    beforeAll(() => {
      model = writeTinyModel({}, 5, family);
    });
    afterAll(() => model.remove());

    it('fp32: logits within 1e-4, the same experts with the same weights', async () => {
      const c = compare(await perExpert(model, 'fp32', tokens), await fused(model, PRECISIONS.fp32, tokens), 0);
      report.push(
        `${family.padEnd(12)} fp32${' '.repeat(29)} max|dlogit| ${c.logit.toExponential(2)}  max|dweight| ${c.weight.toExponential(2)}  choices differ ${c.differ}/${c.total}`,
      );
      expect(c.logit).toBeLessThanOrEqual(FP32_LOGIT_TOLERANCE);
      expect(c.weight).toBeLessThanOrEqual(FP32_WEIGHT_TOLERANCE);
      expect(c.differ + c.tied).toBe(0);
    });

    it.each([
      ['int4 + fp16 (QMoE, MatMulNBits)', 'int4', PRECISIONS.int4fp16],
      ['fp16 weights (MoE, Gemm)', 'fp32', PRECISIONS.fp16],
    ] as const)('%s: logits within the fp16 tolerance, the same experts except near-ties', async (name, refWeights, precision) => {
      const c = compare(await perExpert(model, refWeights, tokens), await fused(model, precision, tokens), FP16_TIE);
      report.push(
        `${family.padEnd(12)} ${name.padEnd(32)} max|dlogit| ${c.logit.toExponential(2)}  choices differ ${c.differ}/${c.total} (+${c.tied} near ties)`,
      );
      expect(c.logit).toBeLessThanOrEqual(FP16_LOGIT_TOLERANCE);
      expect(c.differ).toBe(0);
    });
  },
);
