import { describe, expect, it } from 'vitest';
import { dealBatches, countTokensPerExpert, gatherRows, groupByExpert } from '../../runtime/moe/dispatch.ts';
import { scatterAddWeighted } from '../../runtime/moe/combine.ts';
import { type RoutingResult, routeTokens } from '../../runtime/moe/router.ts';
import { Rng } from '../../server/engine/rng.ts';

function randomRouting(rng: Rng, numTokens: number, topK: number, numExperts: number): RoutingResult {
  const logits = Float32Array.from({ length: numTokens * numExperts }, () => rng.nextFloat() * 6 - 3);
  return routeTokens(logits, numTokens, {
    numExperts,
    topK,
    scoringFunc: 'softmax',
    normTopkProb: true,
    routedScalingFactor: 1,
  });
}

/** Reference grouping: for each expert, scan every token's choices. */
function naiveGroups(r: RoutingResult, numTokens: number, topK: number, numExperts: number) {
  const groups: { expert: number; rows: number[]; weights: number[] }[] = [];
  for (let e = 0; e < numExperts; e++) {
    const rows: number[] = [];
    const weights: number[] = [];
    for (let t = 0; t < numTokens; t++) {
      for (let j = 0; j < topK; j++) {
        if (r.expertIds[t * topK + j] === e) {
          rows.push(t);
          weights.push(r.weights[t * topK + j]);
        }
      }
    }
    if (rows.length > 0) groups.push({ expert: e, rows, weights });
  }
  return groups;
}

describe('groupByExpert', () => {
  it('groups a hand-made routing', () => {
    const routing = { expertIds: Int32Array.from([2, 0, 0, 3, 2, 3]), weights: Float32Array.from([0.6, 0.4, 0.7, 0.3, 0.5, 0.5]) };
    const batches = groupByExpert(routing, 3, 2, 5);
    expect(batches.map((b) => ({ expert: b.expert, rows: [...b.rows], weights: [...b.weights] }))).toEqual([
      { expert: 0, rows: [0, 1], weights: [Math.fround(0.4), Math.fround(0.7)] },
      { expert: 2, rows: [0, 2], weights: [Math.fround(0.6), 0.5] },
      { expert: 3, rows: [1, 2], weights: [Math.fround(0.3), 0.5] },
    ]);
  });

  it('matches per-expert scans on random routings', () => {
    const rng = new Rng(7);
    for (let c = 0; c < 200; c++) {
      const numExperts = 4 + Math.floor(rng.nextFloat() * 61);
      const topK = 1 + Math.floor(rng.nextFloat() * Math.min(8, numExperts));
      const numTokens = 1 + Math.floor(rng.nextFloat() * 33);
      const r = randomRouting(rng, numTokens, topK, numExperts);
      const got = groupByExpert(r, numTokens, topK, numExperts).map((b) => ({
        expert: b.expert,
        rows: [...b.rows],
        weights: [...b.weights],
      }));
      expect(got).toEqual(naiveGroups(r, numTokens, topK, numExperts));
    }
  });

  it('rejects expert ids outside the expert range', () => {
    const routing = { expertIds: Int32Array.from([0, 4]), weights: new Float32Array(2) };
    expect(() => groupByExpert(routing, 1, 2, 4)).toThrow(RangeError);
    expect(() => groupByExpert(routing, 2, 2, 8)).toThrow(RangeError); // too few entries
  });
});

describe('gatherRows and scatterAddWeighted', () => {
  it('gathers rows in the given order, into a provided buffer', () => {
    const src = Float32Array.from([0, 1, 10, 11, 20, 21]);
    expect([...gatherRows(src, 2, Int32Array.from([2, 0, 2]))]).toEqual([20, 21, 0, 1, 20, 21]);
    const out = new Float32Array(8).fill(-1);
    expect(gatherRows(src, 2, Int32Array.from([1]), out)).toBe(out);
    expect([...out]).toEqual([10, 11, -1, -1, -1, -1, -1, -1]);
    expect(() => gatherRows(src, 2, Int32Array.from([3]))).toThrow(RangeError);
  });

  it('adds weighted rows into their destination rows', () => {
    const dst = Float32Array.from([1, 1, 1, 1, 1, 1]);
    scatterAddWeighted(dst, 2, Float32Array.from([1, 2, 3, 4]), Int32Array.from([2, 0]), Float32Array.from([0.5, 2]));
    expect([...dst]).toEqual([7, 9, 1, 1, 1.5, 2]);
  });

  it('matches naive loops on random data', () => {
    const rng = new Rng(11);
    for (let c = 0; c < 50; c++) {
      const width = 1 + Math.floor(rng.nextFloat() * 64);
      const numSrc = 1 + Math.floor(rng.nextFloat() * 20);
      const rows = Int32Array.from({ length: Math.floor(rng.nextFloat() * 30) }, () => Math.floor(rng.nextFloat() * numSrc));
      const src = Float32Array.from({ length: numSrc * width }, () => rng.nextFloat() - 0.5);
      const gathered = gatherRows(src, width, rows);
      expect([...gathered]).toEqual([...rows].flatMap((r) => [...src.subarray(r * width, (r + 1) * width)]));
      const weights = Float32Array.from(rows, () => rng.nextFloat());
      const dst = Float32Array.from(src);
      const want = Float64Array.from(src);
      scatterAddWeighted(dst, width, gathered, rows, weights);
      rows.forEach((r, i) => {
        for (let k = 0; k < width; k++) want[r * width + k] += weights[i] * gathered[i * width + k];
      });
      const maxError = want.reduce((m, w, i) => Math.max(m, Math.abs(dst[i] - w)), 0);
      expect(maxError).toBeLessThan(1e-5);
    }
  });
});

describe('dispatch -> experts -> combine', () => {
  it('equals the per-token weighted sum of expert outputs', () => {
    const rng = new Rng(3);
    const numTokens = 17;
    const numExperts = 12;
    const topK = 3;
    const width = 5;
    // Expert e maps x to (e + 1) * x + e: distinct per expert, cheap to apply.
    const applyExpert = (e: number, x: Float32Array) => x.map((v) => (e + 1) * v + e);
    const hidden = Float32Array.from({ length: numTokens * width }, () => rng.nextFloat() - 0.5);
    const routing = randomRouting(rng, numTokens, topK, numExperts);
    const combined = new Float32Array(numTokens * width);
    for (const batch of groupByExpert(routing, numTokens, topK, numExperts)) {
      const out = applyExpert(batch.expert, gatherRows(hidden, width, batch.rows));
      scatterAddWeighted(combined, width, out, batch.rows, batch.weights);
    }
    for (let t = 0; t < numTokens; t++) {
      const x = hidden.subarray(t * width, (t + 1) * width);
      const want = new Float64Array(width);
      for (let j = 0; j < topK; j++) {
        const y = applyExpert(routing.expertIds[t * topK + j], x);
        for (let k = 0; k < width; k++) want[k] += routing.weights[t * topK + j] * y[k];
      }
      for (let k = 0; k < width; k++) expect(combined[t * width + k]).toBeCloseTo(want[k], 5);
    }
  });
});

describe('countTokensPerExpert', () => {
  it('counts into a fresh Int32Array or overwrites a provided buffer', () => {
    const routing = { expertIds: Int32Array.from([2, 0, 0, 3, 2, 3]), weights: new Float32Array(6) };
    const counts = countTokensPerExpert(routing, 3, 2, 5);
    expect(counts).toBeInstanceOf(Int32Array);
    expect([...counts]).toEqual([2, 0, 2, 2, 0]);
    const out = new Float64Array(5).fill(9);
    expect(countTokensPerExpert(routing, 2, 2, 5, out)).toBe(out);
    expect([...out]).toEqual([2, 0, 1, 1, 0]);
  });

  it('agrees with groupByExpert on random routings', () => {
    const rng = new Rng(5);
    for (let c = 0; c < 50; c++) {
      const r = randomRouting(rng, 9, 4, 16);
      const counts = countTokensPerExpert(r, 9, 4, 16);
      const fromGroups = new Int32Array(16);
      for (const b of groupByExpert(r, 9, 4, 16)) fromGroups[b.expert] = b.rows.length;
      expect([...counts]).toEqual([...fromGroups]);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(36);
    }
  });
});

describe('dealBatches', () => {
  const batch = (expert: number, rows: number) => ({
    expert,
    rows: Int32Array.from({ length: rows }, (_, i) => i),
    weights: new Float32Array(rows),
  });

  it("gives two shards two of one token's four experts each", () => {
    const rankOf = dealBatches([batch(3, 1), batch(9, 1), batch(12, 1), batch(30, 1)], 2);
    expect([...rankOf].filter((r) => r === 0)).toHaveLength(2);
    expect([...rankOf].filter((r) => r === 1)).toHaveLength(2);
  });

  it('deals the largest batches first, each to the least-loaded shard', () => {
    // Costs (2 + rows) 6, 10, 5, 3, 3: shard 0 takes the 10, shard 1 the 6 and the 5 (11),
    // shard 0 expert 3 (13), shard 1 expert 4 (14).
    expect([...dealBatches([batch(0, 4), batch(1, 8), batch(2, 3), batch(3, 1), batch(4, 1)], 2)]).toEqual([1, 0, 1, 0, 1]);
  });

  it('is deterministic in its input and covers one shard', () => {
    const batches = [batch(5, 2), batch(6, 2), batch(7, 2)];
    expect([...dealBatches(batches, 2)]).toEqual([...dealBatches(batches, 2)]);
    expect([...dealBatches(batches, 1)]).toEqual([0, 0, 0]);
  });
});
