import { describe, expect, it } from 'vitest';
import { applyPenalties, argmax, createSamplerScratch, logSoftmax, sampleToken, topLogprobs } from '../../server/engine/sampler.ts';
import { defaultSamplingParams, type SamplingParams } from '../../server/engine/api.ts';
import { type RandomSource, Rng, splitmix64 } from '../../server/engine/rng.ts';

/** Hands out the given uniforms in order. */
class FixedRng implements RandomSource {
  private i = 0;
  constructor(private readonly values: number[]) {}
  nextFloat(): number {
    if (this.i >= this.values.length) throw new Error('FixedRng exhausted');
    return this.values[this.i++];
  }
}

const noRng: RandomSource = {
  nextFloat: () => {
    throw new Error('greedy sampling must not draw');
  },
};

const params = (overrides: Partial<SamplingParams>): SamplingParams => ({ ...defaultSamplingParams, ...overrides });
const logitsFor = (probs: number[]) => Float32Array.from(probs, (p) => Math.log(p));
const ALMOST_ONE = 1 - 2 ** -40;

function histogram(logits: Float32Array, p: SamplingParams, draws: number, seed: number): number[] {
  const rng = new Rng(seed);
  const scratch = createSamplerScratch(logits.length);
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampleToken(logits, p, rng, scratch)]++;
  return counts;
}

function chiSquare(counts: number[], probs: number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  return probs.reduce((acc, p, i) => acc + (p === 0 ? 0 : (counts[i] - n * p) ** 2 / (n * p)), 0);
}

describe('greedy', () => {
  it('temperature 0 and top-k 1 take the argmax, lowest id on ties, without drawing', () => {
    const logits = Float32Array.from([1, 7, 3, 7, NaN]);
    expect(sampleToken(logits, params({ temperature: 0 }), noRng)).toBe(1);
    expect(sampleToken(logits, params({ topK: 1 }), noRng)).toBe(1);
    expect(argmax(Float32Array.from([NaN, -Infinity, -Infinity]))).toBe(0);
    expect(argmax(Float32Array.from([NaN, -3, 2]))).toBe(2);
  });
});

describe('sampling distribution', () => {
  const probs = [0.1, 0.2, 0.3, 0.15, 0.25];

  it('draws in proportion to softmax(logits) (chi-square, df 4, fixed seed)', () => {
    const counts = histogram(logitsFor(probs), defaultSamplingParams, 100_000, 1);
    expect(chiSquare(counts, probs)).toBeLessThan(20);
  });

  it('temperature 2 flattens to p^(1/2)', () => {
    const root = probs.map(Math.sqrt);
    const sum = root.reduce((a, b) => a + b, 0);
    const counts = histogram(logitsFor(probs), params({ temperature: 2 }), 100_000, 2);
    expect(
      chiSquare(
        counts,
        root.map((r) => r / sum),
      ),
    ).toBeLessThan(20);
  });

  it('top-k then top-p renormalise over the survivors', () => {
    // top-k 3 -> [4, 3, 2] / 9; cumulative 0.44, 0.78 >= 0.7 -> tokens 0 and 1 at 4:3.
    const counts = histogram(logitsFor([0.4, 0.3, 0.2, 0.1]), params({ topK: 3, topP: 0.7 }), 50_000, 3);
    expect(counts[2] + counts[3]).toBe(0);
    expect(chiSquare(counts, [4 / 7, 3 / 7, 0, 0])).toBeLessThan(15);
  });

  it('is reproducible for a seed and differs across seeds', () => {
    const logits = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 3);
    const run = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 200 }, () => sampleToken(logits, params({ topP: 0.9, topK: 50 }), rng));
    };
    expect(run(1234)).toEqual(run(1234));
    expect(run(1234)).not.toEqual(run(1235));
  });
});

describe('filters on hand-made logits', () => {
  const logits = logitsFor([0.5, 0.3, 0.15, 0.05]);
  /** The tokens sampled for u -> 0 and u -> 1: the first and last survivors. */
  const ends = (p: Partial<SamplingParams>, l = logits) => [
    sampleToken(l, params(p), new FixedRng([0])),
    sampleToken(l, params(p), new FixedRng([ALMOST_ONE])),
  ];

  it('no filter: the last candidate in id order is reachable', () => {
    expect(ends({})).toEqual([0, 3]);
  });

  it('top-k keeps exactly k, ties at the boundary to the lower id', () => {
    expect(ends({ topK: 2 })).toEqual([0, 1]);
    expect(ends({ topK: 3 }, Float32Array.from([5, 1, 5, 5, 5]))).toEqual([0, 3]);
  });

  it('top-p keeps the smallest prefix reaching top_p, at least one token', () => {
    expect(ends({ topP: 0.75 })).toEqual([0, 1]);
    expect(ends({ topP: 0.81 })).toEqual([0, 2]);
    expect(ends({ topP: 0.4 })).toEqual([0, 0]);
    expect(ends({ topP: 0 })).toEqual([0, 0]);
  });

  it('min-p drops tokens below min_p times the top probability', () => {
    expect(ends({ minP: 0.2 })).toEqual([0, 2]); // threshold 0.1
    expect(ends({ minP: 0.5 })).toEqual([0, 1]); // threshold 0.25
    expect(ends({ minP: 0.2, topK: 2 })).toEqual([0, 1]);
    expect(ends({ minP: 0.2, topP: 0.95 })).toEqual([0, 2]);
  });

  it('never samples a -Infinity token and rejects an all -Infinity row', () => {
    const masked = Float32Array.from([-Infinity, 0, -Infinity]);
    expect(ends({}, masked)).toEqual([1, 1]);
    expect(ends({ topK: 2 }, masked)).toEqual([1, 1]);
    expect(ends({ topP: 0.9 }, masked)).toEqual([1, 1]);
    expect(() => sampleToken(new Float32Array(3).fill(-Infinity), defaultSamplingParams, new FixedRng([0]))).toThrow(RangeError);
  });

  it('does not modify the logits and accepts a missing or small scratch', () => {
    const copy = Float32Array.from(logits);
    sampleToken(logits, params({ topP: 0.5, minP: 0.1, temperature: 0.7 }), new FixedRng([0.3]), createSamplerScratch(2));
    expect([...logits]).toEqual([...copy]);
  });
});

/** Sort-based reference for sampleToken, given the uniform it will draw. */
function naiveSample(logits: Float32Array, p: SamplingParams, u: number): number {
  const n = logits.length;
  const ids = [...Array(n).keys()].filter((i) => !Number.isNaN(logits[i]));
  ids.sort((a, b) => (logits[a] > logits[b] ? -1 : logits[a] < logits[b] ? 1 : a - b));
  const max = logits[ids[0]];
  const weight = (i: number) => Math.exp((logits[i] - max) / p.temperature) || 0;
  const draw = (cands: number[]) => {
    const total = cands.reduce((acc, i) => acc + weight(i), 0);
    let cum = 0;
    const positive = cands.filter((i) => weight(i) > 0);
    for (const i of positive) if ((cum += weight(i)) > u * total) return i;
    return positive[positive.length - 1];
  };
  if (!(p.topK > 0 && p.topK < n) && p.topP >= 1) {
    return draw([...Array(n).keys()].filter((i) => weight(i) >= (p.minP > 0 ? p.minP : Number.MIN_VALUE)));
  }
  let cands = p.topK > 0 && p.topK < n ? ids.slice(0, p.topK) : ids.filter((i) => weight(i) > 0);
  if (p.topP < 1) {
    // Mass over the top-k set (rank order), else over the whole vocabulary (id order).
    const total =
      p.topK > 0 && p.topK < n ? cands.reduce((acc, i) => acc + weight(i), 0) : [...Array(n).keys()].reduce((acc, i) => acc + weight(i), 0);
    let cum = 0;
    const cut = cands.findIndex((i) => (cum += weight(i)) >= p.topP * total);
    if (cut >= 0) cands = cands.slice(0, cut + 1);
  }
  if (p.minP > 0) cands = cands.filter((i, j) => j === 0 || weight(i) >= p.minP * weight(cands[0]));
  return draw(cands);
}

function randomLogits(rng: Rng, n: number, kind: number): Float32Array {
  const logits = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 1.5) * 6;
    if (kind === 0) logits[i] = x;
    else if (kind === 1)
      logits[i] = Math.round(x); // many exact ties
    else logits[i] = i === 0 ? 10 : -0.5 + x / 50; // one spike over a heavy flat tail
  }
  if (kind === 0 && n > 10) logits[Math.floor(rng.nextFloat() * n)] = -Infinity;
  return logits;
}

describe('sampleToken against a sort-based reference', () => {
  it('picks the same token for the same uniform across vocabularies and settings', () => {
    const rng = new Rng(99);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rng.nextFloat() * xs.length)];
    const scratch = createSamplerScratch(32000);
    for (let c = 0; c < 150; c++) {
      const n = pick([7, 100, 5000, 32000]);
      const logits = randomLogits(rng, n, c % 3);
      const p = params({
        temperature: pick([0.3, 0.7, 1, 1.5]),
        topK: pick([0, 0, 2, 5, 50, 1000]),
        topP: pick([1, 1, 0.5, 0.9, 0.95, 0.999]),
        minP: pick([0, 0, 0.01, 0.2]),
      });
      const u = rng.nextFloat();
      const label = JSON.stringify({ c, n, p: { ...p, logitBias: undefined }, u });
      expect(sampleToken(logits, p, new FixedRng([u]), scratch), label).toBe(naiveSample(logits, p, u));
    }
  });
});

describe('top-p over a heavy tail', () => {
  it('widens its candidate band when the likely tokens hold too little mass', () => {
    // One token at weight 1 and 32k tokens near exp(-10.5): the tail holds ~47% of the mass,
    // below the first band's threshold, so the nucleus must reach into it.
    const rng = new Rng(4);
    const logits = randomLogits(rng, 32000, 2);
    const p = params({ topP: 0.9 });
    const us = [0, 0.3, 0.58, 0.6, 0.9, ALMOST_ONE];
    const got = us.map((u) => sampleToken(logits, p, new FixedRng([u])));
    expect(got).toEqual(us.map((u) => naiveSample(logits, p, u)));
    expect(got[0]).toBe(0);
    expect(got[5]).not.toBe(0);
  });
});

describe('applyPenalties', () => {
  it('presence and frequency penalise generated tokens only (OpenAI)', () => {
    const logits = new Float32Array(5);
    applyPenalties(
      logits,
      params({ presencePenalty: 0.5, frequencyPenalty: 0.25 }),
      new Map([
        [1, 2],
        [3, 1],
        [4, 0],
      ]),
      new Set([0]),
    );
    expect([...logits]).toEqual([0, -1, 0, -0.75, 0]);
  });

  it('repetition penalty divides positive and multiplies negative logits, once per token', () => {
    const logits = Float32Array.from([2, -2, 2, -2, 1]);
    applyPenalties(
      logits,
      params({ repetitionPenalty: 2 }),
      new Map([
        [1, 1],
        [2, 3],
      ]),
      new Set([0, 1]),
    );
    expect([...logits]).toEqual([1, -4, 1, -2, 1]);
  });

  it('a tiny repetition penalty saturates a logit at the float32 range instead of making it infinite', () => {
    const logits = Float32Array.from([2, 1, -1]);
    applyPenalties(logits, params({ repetitionPenalty: 1e-300 }), new Map(), new Set([0, 2]));
    expect(logits[0]).toBe(3.4028234663852886e38);
    expect(logits[2]).toBeCloseTo(0); // -1 * 1e-300: below float32's smallest, so zero
    // Still a distribution to sample from: the penalised token wins at any temperature.
    expect(sampleToken(logits, params({ temperature: 1 }), new FixedRng([0.5]))).toBe(0);
  });

  it('adds logit_bias first, then penalises', () => {
    const logits = Float32Array.from([2, 0, 0, 0, 3]);
    const p = params({
      repetitionPenalty: 2,
      logitBias: new Map([
        [0, 6],
        [4, -100],
      ]),
    });
    applyPenalties(logits, p, new Map(), new Set([0]));
    expect([...logits]).toEqual([4, 0, 0, 0, -97]);
  });

  it('leaves logits alone with default params and rejects out-of-vocabulary ids', () => {
    const logits = Float32Array.from([1, -1]);
    applyPenalties(logits, defaultSamplingParams, new Map([[0, 5]]), new Set([1]));
    expect([...logits]).toEqual([1, -1]);
    expect(() => applyPenalties(logits, params({ logitBias: new Map([[2, 1]]) }), new Map())).toThrow(RangeError);
    expect(() => applyPenalties(logits, params({ repetitionPenalty: 1.1 }), new Map(), new Set([-1]))).toThrow(RangeError);
  });
});

describe('logSoftmax and topLogprobs', () => {
  it('matches a float64 reference to float32 precision', () => {
    const rng = new Rng(8);
    const logits = Float32Array.from({ length: 32000 }, () => (rng.nextFloat() - 0.5) * 40);
    const got = logSoftmax(logits);
    let max = -Infinity;
    for (const l of logits) max = Math.max(max, l);
    let sum = 0;
    for (const l of logits) sum += Math.exp(l - max);
    const lse = max + Math.log(sum);
    let worstUlps = 0;
    for (let i = 0; i < logits.length; i++) {
      const want = logits[i] - lse;
      worstUlps = Math.max(worstUlps, Math.abs(got[i] - want) / (Math.abs(want) * 2 ** -23));
    }
    expect(worstUlps).toBeLessThanOrEqual(1);
  });

  it('handles extreme and -Infinity logits and writes into out', () => {
    const out = new Float32Array(4);
    expect(logSoftmax(Float32Array.from([1e4, 0, -1e4, -Infinity]), out)).toBe(out);
    expect([...out]).toEqual([0, -1e4, -2e4, -Infinity]);
  });

  it('lists the n most likely tokens, ties to the lower id, NaN never', () => {
    const lp = Float32Array.from([-1, -0.5, -3, -0.5, NaN, -2]);
    expect(topLogprobs(lp, 3)).toEqual([
      { token: 1, logprob: -0.5 },
      { token: 3, logprob: -0.5 },
      { token: 0, logprob: -1 },
    ]);
    expect(topLogprobs(lp, 10).map((t) => t.token)).toEqual([1, 3, 0, 5, 2]);
    expect(topLogprobs(lp, 0)).toEqual([]);
  });
});

describe('Rng', () => {
  it('is xoshiro128** (reference vector from state 1, 2, 3, 4)', () => {
    const rng = Rng.fromState(1, 2, 3, 4);
    expect(Array.from({ length: 6 }, () => rng.nextUint32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  it('seeds through splitmix64 (reference vector for seed 0)', () => {
    const [s1, first] = splitmix64(0n);
    expect(first).toBe(0xe220a8397b1dcdafn);
    expect(splitmix64(s1)[1]).toBe(0x6e789e6aa1b965f4n);
    // Seed 42 -> state from two splitmix64 outputs (computed independently in Python).
    const rng = new Rng(42);
    expect([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()]).toEqual([825760943, 2622800619, 310231447]);
    expect(new Rng(42).nextFloat()).toBe(0.19226245292029043);
  });

  it('same seed, same sequence; number and bigint seeds agree; floats in [0, 1)', () => {
    const a = new Rng(2 ** 40 + 3);
    const b = new Rng(BigInt(2 ** 40 + 3));
    const xs = Array.from({ length: 10000 }, () => a.nextFloat());
    expect(Array.from({ length: 10000 }, () => b.nextFloat())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(xs.reduce((acc, x) => acc + x, 0) / 10000).toBeCloseTo(0.5, 1);
    expect(new Rng(-1).nextFloat()).toBe(new Rng(2n ** 64n - 1n).nextFloat());
  });

  it('unseeded generators differ; non-integer seeds are rejected', () => {
    expect(new Rng().nextUint32() === new Rng().nextUint32() && new Rng().nextUint32() === new Rng().nextUint32()).toBe(false);
    expect(() => new Rng(1.5)).toThrow(RangeError);
  });
});
