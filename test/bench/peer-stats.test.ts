import { describe, expect, it } from 'vitest';
import type { GreedyStep } from '../../bench/peer/llama-run.ts';
import { judgeGreedy, pairedRatios, spread, summariseMetric } from '../../bench/peer/peer-stats.ts';
import { summariseLevel } from '../../bench/peer/serve-mix.ts';

describe('paired ratios', () => {
  it('divides round by round and summarises min/median/max', () => {
    expect(pairedRatios([2, 3, 9], [1, 3, 3])).toEqual([2, 1, 3]);
    expect(spread([3, 1, 2])).toEqual({ min: 1, median: 2, max: 3 });
    expect(() => pairedRatios([1], [1, 2])).toThrow(/unpaired/);
  });

  it("compares against llama.cpp's better configuration of each round", () => {
    const faster = summariseMetric({ name: 'decode', higherIsBetter: true, moe: [10, 10], llama: { f32: [5, 20], default: [8, 10] } });
    expect(faster.vsBest.ratios).toEqual([10 / 8, 10 / 20]);
    expect(faster.llama.f32.ratios).toEqual([2, 0.5]);
    const latency = summariseMetric({ name: 'itl', higherIsBetter: false, moe: [10], llama: { f32: [5], default: [4] } });
    expect(latency.vsBest.ratios).toEqual([2.5]);
  });
});

const step = (token: number, top: Array<[number, number]>): GreedyStep => ({ token, top });

describe('the correctness guard', () => {
  it('passes identical runs', () => {
    const run = [
      step(5, [
        [5, -0.1],
        [6, -3],
      ]),
      step(7, [
        [7, -0.2],
        [1, -2],
      ]),
    ];
    expect(judgeGreedy(run, run, 0.05, 0.01)).toMatchObject({ agreeing: 2, divergence: null, maxLogprobDiff: 0, ok: true });
  });

  it('accepts a parting at a near-tie but not where an engine clearly preferred its token', () => {
    const moe = [
      step(5, [
        [5, -0.7],
        [6, -0.71],
      ]),
    ];
    const tie = [
      step(6, [
        [6, -0.7],
        [5, -0.705],
      ]),
    ];
    const v = judgeGreedy(moe, tie, 0.05, 0.02);
    expect(v).toMatchObject({ agreeing: 0, ok: true });
    expect(v.divergence?.gapNats).toBeCloseTo(0.01, 6);
    const clear = [
      step(6, [
        [6, -0.1],
        [5, -2.5],
      ]),
    ];
    expect(judgeGreedy(moe, clear, 0.05, 5).ok).toBe(false);
  });

  it('fails when the log-probabilities of the same tokens differ: a mis-written weight', () => {
    const moe = [
      step(5, [
        [5, -0.1],
        [6, -3],
      ]),
    ];
    const llama = [
      step(5, [
        [5, -0.4],
        [6, -1.5],
      ]),
    ];
    expect(judgeGreedy(moe, llama, 0.05, 0.01)).toMatchObject({ agreeing: 1, ok: false, maxLogprobDiff: 1.5 });
  });
});

describe('serving level summary', () => {
  it("counts output tokens over the level's wall time, TTFT from sending, ITL between tokens", () => {
    const timings = [
      { sentAt: 0, tokenTimes: [100, 110, 130], error: null },
      { sentAt: 50, tokenTimes: [250, 260], outputTokens: 2, error: null },
      { sentAt: 60, tokenTimes: [], error: 'HTTP 500' },
    ];
    const s = summariseLevel(2, timings, 2);
    expect(s).toMatchObject({ concurrency: 2, requests: 3, failed: 1, outputTokensPerSecond: 2.5 });
    expect(s.ttftMs).toEqual({ p50: 150, p99: 200 });
    expect(s.itlMs.p99).toBe(20);
  });
});
