import { describe, expect, it } from 'vitest';
import { type GatingConfig, maskGroups, routeTokens, selectTopK, sigmoid, softmaxInPlace } from '../../runtime/moe/router.ts';
import { Rng } from '../../server/engine/rng.ts';

const base: GatingConfig = {
  numExperts: 4,
  topK: 2,
  scoringFunc: 'softmax',
  normTopkProb: false,
  routedScalingFactor: 1,
};

/** Router logits whose softmax is exactly proportional to `probs` (up to float32 rounding). */
function logitsFor(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => Math.log(p));
}

function expectWeights(actual: Float32Array, expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((w, i) => expect(actual[i]).toBeCloseTo(w, 6));
}

describe('softmax and sigmoid scoring', () => {
  it('softmax picks the top-k probabilities, no renormalisation', () => {
    const r = routeTokens(logitsFor([0.1, 0.2, 0.3, 0.4]), 1, base);
    expect([...r.expertIds]).toEqual([3, 2]);
    expectWeights(r.weights, [0.4, 0.3]);
  });

  it('renormalises and then scales', () => {
    const r = routeTokens(logitsFor([0.1, 0.2, 0.3, 0.4]), 1, { ...base, normTopkProb: true, routedScalingFactor: 2.5 });
    expect([...r.expertIds]).toEqual([3, 2]);
    expectWeights(r.weights, [(4 / 7) * 2.5, (3 / 7) * 2.5]);
  });

  it('scales without renormalising', () => {
    const r = routeTokens(logitsFor([0.1, 0.2, 0.3, 0.4]), 1, { ...base, routedScalingFactor: 16 });
    expectWeights(r.weights, [6.4, 4.8]);
  });

  it('sigmoid scores each expert independently', () => {
    const logits = Float32Array.from([0, 2, -1, 1]);
    const r = routeTokens(logits, 1, { ...base, scoringFunc: 'sigmoid' });
    expect([...r.expertIds]).toEqual([1, 3]);
    expectWeights(r.weights, [sigmoid(2), sigmoid(1)]);
    const n = routeTokens(logits, 1, { ...base, scoringFunc: 'sigmoid', normTopkProb: true });
    const sum = sigmoid(2) + sigmoid(1);
    expectWeights(n.weights, [sigmoid(2) / sum, sigmoid(1) / sum]);
  });

  it('top-1 renormalises to 1 unless renormalizeOnlyIfTopkGt1 (DeepSeekMoE)', () => {
    const logits = logitsFor([0.1, 0.2, 0.3, 0.4]);
    const cfg = { ...base, topK: 1, normTopkProb: true };
    expectWeights(routeTokens(logits, 1, cfg).weights, [1]);
    expectWeights(routeTokens(logits, 1, { ...cfg, renormalizeOnlyIfTopkGt1: true }).weights, [0.4]);
    // With k > 1 the flag changes nothing.
    const k2 = { ...cfg, topK: 2, renormalizeOnlyIfTopkGt1: true };
    expectWeights(routeTokens(logits, 1, k2).weights, [4 / 7, 3 / 7]);
  });

  it('routes several tokens token-major', () => {
    const logits = new Float32Array([...logitsFor([0.1, 0.2, 0.3, 0.4]), ...logitsFor([0.4, 0.3, 0.2, 0.1])]);
    const r = routeTokens(logits, 2, base);
    expect([...r.expertIds]).toEqual([3, 2, 0, 1]);
    expectWeights(r.weights, [0.4, 0.3, 0.4, 0.3]);
  });

  it('writes into a caller-provided result', () => {
    const out = { expertIds: new Int32Array(8).fill(-7), weights: new Float32Array(8) };
    const r = routeTokens(logitsFor([0.1, 0.2, 0.3, 0.4]), 1, base, out);
    expect(r).toBe(out);
    expect([...out.expertIds]).toEqual([3, 2, -7, -7, -7, -7, -7, -7]);
    expect(() => routeTokens(new Float32Array(12), 3, base, out)).not.toThrow();
    expect(() => routeTokens(new Float32Array(20), 5, base, out)).toThrow(RangeError);
  });
});

describe('correction bias (DeepSeek-V3)', () => {
  it('selects with the bias but weighs with the unbiased scores', () => {
    const cfg: GatingConfig = { ...base, scoringFunc: 'sigmoid', correctionBias: Float32Array.from([0, 0, 1, 0]) };
    const r = routeTokens(Float32Array.from([0, 2, -1, 1]), 1, cfg);
    // Selection scores: 0.5, 0.881, 1.269, 0.731.
    expect([...r.expertIds]).toEqual([2, 1]);
    expectWeights(r.weights, [sigmoid(-1), sigmoid(2)]);
  });
});

describe('grouped selection', () => {
  // Softmax scores by group: [0.05 0.20] [0.15 0.15] [0.18 0.02] [0.10 0.15]
  const probs = [0.05, 0.2, 0.15, 0.15, 0.18, 0.02, 0.1, 0.15];
  const v2: GatingConfig = { ...base, numExperts: 8, topK: 3, numGroups: 4, topkGroups: 2, groupScore: 'max' };

  it('V2: keeps the groups with the best max score', () => {
    const r = routeTokens(logitsFor(probs), 1, v2);
    // Groups 0 and 2 survive; ungrouped top-3 would take expert 2 from group 1.
    expect([...r.expertIds]).toEqual([1, 4, 0]);
    expectWeights(r.weights, [0.2, 0.18, 0.05]);
    expect([...routeTokens(logitsFor(probs), 1, { ...v2, numGroups: 1 }).expertIds]).toEqual([1, 4, 2]);
  });

  // Bias dominates selection: group sums 11, 13, 8, 11.88 but maxima 9.5, 6.73, 7.5, 6.38.
  const logits = Float32Array.from([0, 0, 1, -1, 0, 0, 0, 2]);
  const bias = Float32Array.from([9, 1, 6, 6, 7, 0, 5, 5.5]);
  const v3: GatingConfig = {
    numExperts: 8,
    topK: 3,
    scoringFunc: 'sigmoid',
    normTopkProb: true,
    routedScalingFactor: 2.5,
    correctionBias: bias,
    numGroups: 4,
    topkGroups: 2,
    groupScore: 'top2-sum',
  };

  it('V3: keeps the groups with the best top-2 sum of biased scores', () => {
    const r = routeTokens(logits, 1, v3);
    expect([...r.expertIds]).toEqual([2, 7, 3]);
    const s = [sigmoid(1), sigmoid(2), sigmoid(-1)];
    const sum = s[0] + s[1] + s[2];
    expectWeights(
      r.weights,
      s.map((w) => (w / sum) * 2.5),
    );
  });

  it('the same scores grouped by max keep different groups', () => {
    const r = routeTokens(logits, 1, { ...v3, groupScore: 'max' });
    expect([...r.expertIds]).toEqual([0, 4, 1]);
  });

  it('maskedGroupScore 0 reproduces Hugging Face when kept scores are negative', () => {
    const cfg: GatingConfig = {
      numExperts: 4,
      topK: 2,
      scoringFunc: 'sigmoid',
      normTopkProb: false,
      routedScalingFactor: 1,
      correctionBias: Float32Array.from([-2, -3, -6, -6]),
      numGroups: 2,
      topkGroups: 1,
      groupScore: 'top2-sum',
    };
    const zeros = new Float32Array(4);
    expect([...routeTokens(zeros, 1, cfg).expertIds]).toEqual([0, 1]);
    expect([...routeTokens(zeros, 1, { ...cfg, maskedGroupScore: 0 }).expertIds]).toEqual([2, 3]);
  });

  it('maskGroups fills the dropped groups in place', () => {
    const sel = Float32Array.from([1, 2, 5, 0, 3, 3]);
    maskGroups(sel, 3, 2, 'max');
    expect([...sel]).toEqual([-Infinity, -Infinity, 5, 0, 3, 3]);
    const sel2 = Float32Array.from([1, 2, 5, 0, 3, 3]);
    maskGroups(sel2, 3, 1, 'top2-sum', 0);
    expect([...sel2]).toEqual([0, 0, 0, 0, 3, 3]);
  });

  it('rejects configurations whose kept groups hold fewer than topK experts', () => {
    expect(() => routeTokens(new Float32Array(8), 1, { ...v2, topK: 5 })).toThrow(RangeError);
    expect(() => routeTokens(new Float32Array(8), 1, { ...v2, numGroups: 3 })).toThrow(RangeError);
  });
});

describe('ties and selectTopK', () => {
  it('equal scores go to the lower expert index first', () => {
    const r = routeTokens(new Float32Array(6), 1, { ...base, numExperts: 6, topK: 3 });
    expect([...r.expertIds]).toEqual([0, 1, 2]);
    const ids = new Int32Array(2);
    selectTopK(Float32Array.from([1, 3, 3, 2, 3]), 2, ids);
    expect([...ids]).toEqual([1, 2]);
    selectTopK(Float32Array.from([3, 1, 2, 3]), 2, ids);
    expect([...ids]).toEqual([0, 3]);
  });

  it('ranks NaN as -Infinity, honours the mask and reports short selections', () => {
    const ids = new Int32Array(3);
    expect(selectTopK(Float32Array.from([NaN, 1, -Infinity, 0]), 3, ids)).toBe(3);
    expect([...ids]).toEqual([1, 3, 0]);
    selectTopK(Float32Array.from([NaN, -5, NaN, 0]), 2, ids);
    expect([...ids.subarray(0, 2)]).toEqual([3, 1]);
    const mask = Uint8Array.from([1, 0, 0, 1]);
    expect(selectTopK(Float32Array.from([1, 9, 8, 0]), 3, ids, mask)).toBe(2);
    expect([...ids]).toEqual([0, 3, -1]);
  });
});

/** Sort-based reference for routeTokens. */
function naiveRoute(logits: Float32Array, numTokens: number, cfg: GatingConfig): { ids: number[]; weights: number[] } {
  const E = cfg.numExperts;
  const ids: number[] = [];
  const weights: number[] = [];
  const byScore = (sc: number[]) => (a: number, b: number) => sc[b] - sc[a] || a - b;
  for (let t = 0; t < numTokens; t++) {
    const row = Array.from(logits.subarray(t * E, (t + 1) * E));
    const max = Math.max(...row);
    const sum = row.reduce((acc, l) => acc + Math.exp(l - max), 0);
    const s = row.map((l) => Math.fround(cfg.scoringFunc === 'softmax' ? Math.exp(l - max) / sum : 1 / (1 + Math.exp(-l))));
    let sel = s.map((v, e) => Math.fround(v + (cfg.correctionBias?.[e] ?? 0)));
    const G = cfg.numGroups ?? 1;
    if (G > 1) {
      const size = E / G;
      const groupScores = Array.from({ length: G }, (_, g) => {
        const members = sel.slice(g * size, (g + 1) * size).sort((a, b) => b - a);
        // float32 sum, as torch computes it
        return cfg.groupScore === 'top2-sum' ? Math.fround(members[0] + (members[1] ?? 0)) : members[0];
      });
      const kept = new Set([...groupScores.keys()].sort(byScore(groupScores)).slice(0, cfg.topkGroups));
      sel = sel.map((v, e) => (kept.has(Math.floor(e / size)) ? v : -Infinity));
    }
    const chosen = [...sel.keys()].sort(byScore(sel)).slice(0, cfg.topK);
    let w = chosen.map((e) => s[e]);
    if (cfg.normTopkProb && (cfg.topK > 1 || !cfg.renormalizeOnlyIfTopkGt1)) {
      const total = w.reduce((a, b) => a + b, 0) + 1e-20;
      w = w.map((x) => x / total);
    }
    ids.push(...chosen);
    weights.push(...w.map((x) => x * cfg.routedScalingFactor));
  }
  return { ids, weights };
}

function randomConfig(rng: Rng, E: number): GatingConfig {
  const topK = 1 + Math.floor(rng.nextFloat() * Math.min(8, E));
  const cfg: GatingConfig = {
    numExperts: E,
    topK,
    scoringFunc: rng.nextFloat() < 0.5 ? 'softmax' : 'sigmoid',
    normTopkProb: rng.nextFloat() < 0.5,
    renormalizeOnlyIfTopkGt1: rng.nextFloat() < 0.5,
    routedScalingFactor: rng.nextFloat() < 0.5 ? 1 : 2.5,
  };
  if (rng.nextFloat() < 0.3) cfg.correctionBias = Float32Array.from({ length: E }, () => rng.nextFloat() - 0.5);
  const divisors = [2, 4, 8].filter((g) => E % g === 0 && E > g);
  if (divisors.length > 0 && rng.nextFloat() < 0.5) {
    const G = divisors[Math.floor(rng.nextFloat() * divisors.length)];
    const minGroups = Math.ceil(topK / (E / G));
    cfg.numGroups = G;
    cfg.topkGroups = minGroups + Math.floor(rng.nextFloat() * (G - minGroups + 1));
    cfg.groupScore = rng.nextFloat() < 0.5 ? 'max' : 'top2-sum';
  }
  return cfg;
}

describe('routeTokens against a sort-based reference', () => {
  it('matches across expert counts 4..64, k 1..8, tokens 1..33', () => {
    const rng = new Rng(20240601);
    let cases = 0;
    for (let E = 4; E <= 64; E += E < 16 ? 1 : 4) {
      for (let rep = 0; rep < 12; rep++) {
        const cfg = randomConfig(rng, E);
        const numTokens = 1 + Math.floor(rng.nextFloat() * 33);
        // Coarse logits make exact ties common, exercising the tie-break.
        const coarse = rep % 3 === 0;
        const logits = Float32Array.from({ length: numTokens * E }, () => {
          const x = (rng.nextFloat() - 0.5) * 8;
          return coarse ? Math.round(x) : x;
        });
        const got = routeTokens(logits, numTokens, cfg);
        const want = naiveRoute(logits, numTokens, cfg);
        expect([...got.expertIds], JSON.stringify({ E, cfg: { ...cfg, correctionBias: undefined } })).toEqual(want.ids);
        const maxError = want.weights.reduce((m, w, i) => Math.max(m, Math.abs(got.weights[i] - w)), 0);
        expect(maxError).toBeLessThanOrEqual(2e-6);
        cases++;
      }
    }
    expect(cases).toBeGreaterThanOrEqual(300);
  });

  it('softmaxInPlace sums to one and survives large logits', () => {
    const row = Float32Array.from([1000, 999, -1000, 998]);
    softmaxInPlace(row);
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(row[2]).toBe(0);
    expect(row[0]).toBeCloseTo(1 / (1 + Math.exp(-1) + Math.exp(-2)), 6);
  });
});
