// The gating of the fused blocks (graphs/ops/gating.ts, ONNX nodes) against the engine's router
// (runtime/moe/router.ts) on random configurations of every kind the families use: softmax and
// sigmoid, correction bias, group-limited selection by max or top-2 sum, renormalisation,
// scaling. Run on the CPU provider. Also: the encoded routing the MoE op receives picks exactly
// the chosen experts with the family's weights.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeRouting, gateTokens, gatingFromSpec } from '../../graphs/ops/gating.ts';
import { ort } from '../../kernels/session.ts';
import { loadModelSpec } from '../../models/registry.ts';
import { isMoe } from '../../models/spec.ts';
import { SYNTHETIC_FAMILIES } from '../../models/synthetic.ts';
import { syntheticConfig } from '../../models/synthetic-presets.ts';
import { gatingConfigFor } from '../../runtime/moe/router-config.ts';
import { type GatingConfig, routeTokens } from '../../runtime/moe/router.ts';
import { Rng } from '../../server/engine/rng.ts';
import { openGraph } from '../helpers/graph-run.ts';
import { nearTie, routingMargin } from '../helpers/routing-margin.ts';

function randomConfig(rng: Rng, E: number): GatingConfig {
  const topK = 1 + Math.floor(rng.nextFloat() * Math.min(8, E));
  const cfg: GatingConfig = {
    numExperts: E,
    topK,
    scoringFunc: rng.nextFloat() < 0.5 ? 'softmax' : 'sigmoid',
    normTopkProb: rng.nextFloat() < 0.5,
    renormalizeOnlyIfTopkGt1: rng.nextFloat() < 0.3,
    routedScalingFactor: rng.nextFloat() < 0.5 ? 1 : 2.5,
  };
  if (rng.nextFloat() < 0.4) cfg.correctionBias = Float32Array.from({ length: E }, () => rng.nextFloat() - 0.5);
  const divisors = [2, 4, 8].filter((g) => E % g === 0 && E > g);
  if (divisors.length > 0 && rng.nextFloat() < 0.6) {
    const G = divisors[Math.floor(rng.nextFloat() * divisors.length)];
    const minGroups = Math.ceil(topK / (E / G));
    cfg.numGroups = G;
    cfg.topkGroups = minGroups + Math.floor(rng.nextFloat() * (G - minGroups + 1));
    cfg.groupScore = rng.nextFloat() < 0.5 ? 'max' : 'top2-sum';
    cfg.maskedGroupScore = rng.nextFloat() < 0.5 ? 0 : -Infinity;
  }
  return cfg;
}

/** The graph's routing of `logits` [T, E]. */
function graphRoute(cfg: GatingConfig, logits: Float32Array, numTokens: number): { ids: number[]; weights: Float32Array } {
  const session = openGraph((b) => {
    const routing = gateTokens(b, b.input('logits', 'float32', ['T', cfg.numExperts]), cfg);
    b.output(routing.ids, 'ids', 'int64', ['T', cfg.topK]);
    b.output(routing.weights, 'weights', 'float32', ['T', cfg.topK]);
  });
  try {
    const out = session.run({ logits: new ort.Tensor('float32', logits, [numTokens, cfg.numExperts]) });
    return { ids: Array.from(out.ids.data as BigInt64Array, Number), weights: out.weights.data as Float32Array };
  } finally {
    session.release();
  }
}

describe('gating graph against the router', () => {
  it('picks the same experts with the same weights across 4..64 experts, k 1..8, every gating kind', () => {
    const rng = new Rng(20261203);
    let tokens = 0;
    let nearTies = 0;
    for (const E of [4, 6, 8, 16, 32, 64]) {
      for (let rep = 0; rep < 8; rep++) {
        const cfg = randomConfig(rng, E);
        const numTokens = 1 + Math.floor(rng.nextFloat() * 17);
        const logits = Float32Array.from({ length: numTokens * E }, () => (rng.nextFloat() - 0.5) * 8);
        const want = routeTokens(logits, numTokens, cfg);
        const got = graphRoute(cfg, logits, numTokens);
        const k = cfg.topK;
        for (let t = 0; t < numTokens; t++) {
          tokens++;
          const row = (a: ArrayLike<number>) => Array.from(a).slice(t * k, (t + 1) * k);
          // The graph's softmax is float32, the router's float64 rounded once: selection may
          // differ only where two selection scores are within float32 rounding of each other.
          if (nearTie(routingMargin(logits, t, cfg), 1e-6)) {
            nearTies++;
            continue;
          }
          const context = JSON.stringify({ E, t, cfg: { ...cfg, correctionBias: cfg.correctionBias !== undefined } });
          expect(row(got.ids), context).toEqual(row(want.expertIds));
          row(got.weights).forEach((w, j) =>
            expect(Math.abs(w - want.weights[t * k + j]), context).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(w))),
          );
        }
      }
    }
    expect(nearTies).toBeLessThan(tokens / 100);
  });

  it('breaks exact ties towards the lower expert, as the router does', () => {
    const cfg: GatingConfig = { numExperts: 6, topK: 3, scoringFunc: 'softmax', normTopkProb: true, routedScalingFactor: 1 };
    const got = graphRoute(cfg, new Float32Array(6), 1);
    expect(got.ids).toEqual([...routeTokens(new Float32Array(6), 1, cfg).expertIds]);
    expect(got.ids).toEqual([0, 1, 2]);
  });

  it('encodes a routing so that softmax + top-k + renormalise (the MoE op) gives back its weights', () => {
    const cfg: GatingConfig = { numExperts: 8, topK: 3, scoringFunc: 'sigmoid', normTopkProb: false, routedScalingFactor: 2.5 };
    const rng = new Rng(7);
    const logits = Float32Array.from({ length: 4 * 8 }, () => (rng.nextFloat() - 0.5) * 6);
    const session = openGraph((b) => {
      const routing = gateTokens(b, b.input('logits', 'float32', ['T', 8]), cfg);
      const { routerProbs, scale } = encodeRouting(b, routing, 8);
      b.output(routerProbs, 'probs', 'float32', ['T', 8]);
      b.output(scale, 'scale', 'float32', ['T', 1]);
    });
    const out = session.run({ logits: new ort.Tensor('float32', logits, [4, 8]) });
    session.release();
    const want = routeTokens(logits, 4, cfg);
    const probs = out.probs.data as Float32Array;
    const scale = out.scale.data as Float32Array;
    for (let t = 0; t < 4; t++) {
      const row = Array.from(probs.subarray(t * 8, (t + 1) * 8));
      const exps = row.map(Math.exp);
      const chosen = [...row.keys()].sort((a, b) => row[b] - row[a] || a - b).slice(0, 3);
      expect(chosen.sort()).toEqual([...want.expertIds.subarray(t * 3, (t + 1) * 3)].sort());
      const total = chosen.reduce((s, e) => s + exps[e], 0);
      chosen.forEach((e) => {
        const j = Array.from(want.expertIds.subarray(t * 3, (t + 1) * 3)).indexOf(e);
        expect((exps[e] / total) * scale[t]).toBeCloseTo(want.weights[t * 3 + j], 6);
      });
      row.forEach((v, e) => (chosen.includes(e) ? expect(v).toBeGreaterThan(-61) : expect(v).toBe(-1e4)));
    }
  });
});

describe('gatingFromSpec', () => {
  it('is the router configuration of every family', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-gating-'));
    try {
      for (const family of SYNTHETIC_FAMILIES) {
        writeFileSync(join(dir, 'config.json'), JSON.stringify(syntheticConfig('bench', {}, family)));
        const { spec } = loadModelSpec(dir);
        const bias = new Float32Array(256);
        for (const mlp of spec.mlp.filter(isMoe)) {
          const b = mlp.correctionBias ? bias.subarray(0, mlp.numRoutedExperts) : undefined;
          expect(gatingFromSpec(mlp, b), family).toEqual(gatingConfigFor(mlp, b));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
