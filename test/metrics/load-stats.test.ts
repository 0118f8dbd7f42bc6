// The balance statistics and the sliding window, on hand-computed loads.
import { describe, expect, it } from 'vitest';
import { LoadWindow } from '../../server/metrics/expert-load.ts';
import { summarizeLoad } from '../../server/metrics/load-stats.ts';

describe('summarizeLoad', () => {
  it('reports a perfectly even load as ratio 1, CV 0, entropy 1, all active', () => {
    expect(summarizeLoad([5, 5, 5, 5])).toEqual({
      numAssignments: 20,
      maxMeanRatio: 1,
      imbalance: 0,
      coefficientOfVariation: 0,
      normalizedEntropy: 1,
      activeFraction: 1,
    });
  });

  it('reports one hot expert as ratio = experts, entropy 0, one active', () => {
    const s = summarizeLoad([0, 12, 0, 0]);
    expect(s).toMatchObject({ numAssignments: 12, maxMeanRatio: 4, imbalance: 3, normalizedEntropy: 0, activeFraction: 0.25 });
    expect(s.coefficientOfVariation).toBeCloseTo(Math.sqrt(3), 12);
  });

  it('computes an uneven load by the stated definitions', () => {
    const loads = [6, 2, 0, 0];
    const s = summarizeLoad(loads);
    const mean = 2;
    expect(s.maxMeanRatio).toBe(3);
    expect(s.imbalance).toBe(2);
    expect(s.coefficientOfVariation).toBeCloseTo(Math.sqrt((16 + 0 + 4 + 4) / 4) / mean, 12);
    expect(s.normalizedEntropy).toBeCloseTo(-(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25)) / Math.log(4), 12);
    expect(s.activeFraction).toBe(0.5);
  });

  it('reports zeros while nothing was routed', () => {
    expect(summarizeLoad([0, 0, 0])).toMatchObject({ numAssignments: 0, maxMeanRatio: 0, normalizedEntropy: 0, activeFraction: 0 });
  });
});

describe('LoadWindow', () => {
  it('keeps the choices of the most recent tokens only', () => {
    const window = new LoadWindow(4, 2, 3); // 4 experts, top-2, last 3 tokens
    window.push(Int32Array.from([0, 1, 0, 2])); // tokens A, B
    expect(Array.from(window.loads)).toEqual([2, 1, 1, 0]);
    expect(window.numTokens).toBe(2);
    window.push(Int32Array.from([3, 2, 3, 1])); // C, D: A drops out
    expect(Array.from(window.loads)).toEqual([1, 1, 2, 2]);
    expect(window.numTokens).toBe(3);
  });

  it('takes a step larger than the window by its newest tokens', () => {
    const window = new LoadWindow(3, 1, 2);
    window.push(Int32Array.from([0, 0, 1, 2, 2]));
    expect(Array.from(window.loads)).toEqual([0, 0, 2]);
    window.push(Int32Array.from([1]));
    expect(Array.from(window.loads)).toEqual([0, 1, 1]);
  });
});
