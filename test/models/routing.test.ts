// Each family's gate, as its parser configures the shared gating pieces (models/routing.ts ->
// kernels/gating.ts), on hand-made router logits with exactly known results: groups masked,
// the correction bias used for selection but not for the weights, scaling applied or not.
import { describe, expect, it } from 'vitest';
import { routeTokens } from '../../runtime/moe/router.ts';
import { familyFor } from '../../models/registry.ts';
import { describeRouting } from '../../models/routing.ts';
import { gatingConfigFor } from '../../runtime/moe/router-config.ts';
import type { MoeMlpSpec } from '../../models/spec.ts';
import { syntheticConfig, type SyntheticFamily } from '../../models/synthetic.ts';

function moeLayer(family: SyntheticFamily, overrides: Record<string, unknown>): MoeMlpSpec {
  const config = syntheticConfig('tiny', overrides, family);
  const spec = familyFor(family, 'config.json').parseConfig(config, 'config.json');
  const moe = spec.mlp.find((m): m is MoeMlpSpec => m.kind === 'moe');
  if (!moe) throw new Error('no MoE layer');
  return moe;
}

/** Logits whose softmax is proportional to p, or whose sigmoid is s. */
const softmaxLogits = (p: number[]) => Float32Array.from(p, Math.log);
const sigmoidLogits = (s: number[]) => Float32Array.from(s, (v) => Math.log(v / (1 - v)));

function route(mlp: MoeMlpSpec, logits: Float32Array, bias?: number[]) {
  const r = routeTokens(logits, 1, gatingConfigFor(mlp, bias ? Float32Array.from(bias) : undefined));
  return { ids: [...r.expertIds], weights: [...r.weights] };
}

function expectClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  expected.forEach((w, i) => expect(actual[i]).toBeCloseTo(w, 6));
}

// Four groups of two experts. Expert 6 (0.25) is the second best overall, in group 3.
const PROBS = [0.3, 0.01, 0.12, 0.11, 0.02, 0.02, 0.25, 0.17];

describe('DeepSeek-V2 group-limited greedy', () => {
  it('only the topk_group best groups (by max score) can be chosen; weights scaled by routed_scaling_factor', () => {
    const mlp = moeLayer('deepseek_v2', { topk_group: 1, routed_scaling_factor: 16 });
    const r = route(mlp, softmaxLogits(PROBS));
    // Group 0 (max 0.30) alone survives: expert 6 is masked although it outscores expert 1.
    expect(r.ids).toEqual([0, 1]);
    expectClose(r.weights, [0.3 * 16, 0.01 * 16]);
  });

  it('two groups kept: groups 0 and 3; with norm_topk_prob the weights are renormalised and NOT scaled (V2)', () => {
    const mlp = moeLayer('deepseek_v2', { topk_group: 2, norm_topk_prob: true, routed_scaling_factor: 16 });
    const r = route(mlp, softmaxLogits(PROBS));
    expect(r.ids).toEqual([0, 6]);
    expectClose(r.weights, [0.3 / 0.55, 0.25 / 0.55]);
  });

  it('greedy ignores groups', () => {
    const r = route(moeLayer('deepseek_v2', { topk_method: 'greedy', routed_scaling_factor: 1 }), softmaxLogits(PROBS));
    expect(r.ids).toEqual([0, 6]);
    expectClose(r.weights, [0.3, 0.25]);
  });
});

describe('DeepSeek-V3 noaux_tc', () => {
  // Sigmoid scores; the bias lifts group 2 (experts 4, 5) for selection only.
  const scores = [0.9, 0.1, 0.6, 0.6, 0.3, 0.2, 0.55, 0.5];
  const bias = [0, 0, 0, 0, 0.5, 0.5, 0, 0];
  // Biased group top-2 sums: g0 1.0, g1 1.2, g2 1.5, g3 1.05 -> groups 2 and 1 kept.

  it('selects by biased scores within the kept groups, weighs by unbiased scores, renormalises, then scales', () => {
    const r = route(moeLayer('deepseek_v3', {}), sigmoidLogits(scores), bias);
    // Expert 0 (0.9, the best unbiased score) sits in dropped group 0.
    expect(r.ids).toEqual([4, 5]);
    expectClose(r.weights, [(0.3 / 0.5) * 2.5, (0.2 / 0.5) * 2.5]);
  });

  it('without norm_topk_prob: the unbiased scores times routed_scaling_factor', () => {
    const r = route(moeLayer('deepseek_v3', { norm_topk_prob: false }), sigmoidLogits(scores), bias);
    expect(r.ids).toEqual([4, 5]);
    expectClose(r.weights, [0.3 * 2.5, 0.2 * 2.5]);
  });

  it('without the bias groups 1 (sum 1.2) and 3 (1.05) win: a group scores the sum of its top two, not its max', () => {
    const r = route(moeLayer('deepseek_v3', {}), sigmoidLogits(scores), new Array(8).fill(0));
    // Group 0 holds the best expert (0.9) but sums to 1.0, so it is dropped.
    expect(r.ids).toEqual([2, 3]);
    expectClose(r.weights, [0.5 * 2.5, 0.5 * 2.5]);
  });

  it('refuses to route without the layer bias', () => {
    expect(() => gatingConfigFor(moeLayer('deepseek_v3', {}))).toThrow(/e_score_correction_bias/);
  });
});

describe('softmax top-k families', () => {
  it('Mixtral always renormalises; OLMoE and Qwen only with norm_topk_prob; none scale', () => {
    const logits = softmaxLogits(PROBS);
    expectClose(route(moeLayer('mixtral', {}), logits).weights, [0.3 / 0.55, 0.25 / 0.55]);
    expectClose(route(moeLayer('olmoe', {}), logits).weights, [0.3, 0.25]);
    expectClose(route(moeLayer('qwen3_moe', { norm_topk_prob: true }), logits).weights, [0.3 / 0.55, 0.25 / 0.55]);
    expectClose(route(moeLayer('qwen2_moe', {}), logits).weights, [0.3, 0.25]);
  });

  it('describes routing for clients, including the Qwen2-MoE shared-expert gate', () => {
    expect(describeRouting(moeLayer('qwen2_moe', {}))).toMatchObject({
      scoring: 'softmax',
      top_k: 2,
      shared_expert_gate: true,
      shared_expert_intermediate_size: 48,
      groups: null,
    });
    expect(describeRouting(moeLayer('deepseek_v3', {}))).toMatchObject({
      scoring: 'sigmoid',
      correction_bias: true,
      groups: { num_groups: 4, topk_groups: 2, group_score: 'top2-sum' },
      routed_scaling_factor: 2.5,
    });
  });
});
