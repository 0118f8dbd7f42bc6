// Pure summaries for bench:peer: per-round paired ratios (moe-server / llama.cpp, each round's
// two values measured back to back, so load drift cancels in the ratio more than in either
// side's median), min/median/max, and the correctness guard's verdict on two greedy runs.
import { median } from '../table.ts';
import type { GreedyStep } from './llama-run.ts';

export interface Spread {
  min: number;
  median: number;
  max: number;
}

export function spread(values: number[]): Spread {
  return { min: Math.min(...values), median: median(values), max: Math.max(...values) };
}

/** moe[i] / llama[i] for every round both sides measured. */
export function pairedRatios(moe: number[], llama: number[]): number[] {
  if (moe.length !== llama.length) throw new Error(`unpaired rounds: ${moe.length} vs ${llama.length}`);
  return moe.map((m, i) => m / llama[i]);
}

/** One measured quantity, one value per round for moe-server and for each llama.cpp configuration. */
export interface Metric {
  name: string;
  higherIsBetter: boolean;
  moe: number[];
  llama: Record<string, number[]>;
}

export interface MetricSummary {
  name: string;
  higherIsBetter: boolean;
  moe: Spread;
  llama: Record<string, { value: Spread; ratio: Spread; ratios: number[] }>;
  /** Against llama.cpp's better configuration of each round. */
  vsBest: { ratio: Spread; ratios: number[] };
}

export function summariseMetric(m: Metric): MetricSummary {
  const configs = Object.keys(m.llama);
  const llama = Object.fromEntries(
    configs.map((c) => {
      const ratios = pairedRatios(m.moe, m.llama[c]);
      return [c, { value: spread(m.llama[c]), ratio: spread(ratios), ratios }];
    }),
  );
  const best = m.moe.map((_, round) => {
    const values = configs.map((c) => m.llama[c][round]);
    return m.higherIsBetter ? Math.max(...values) : Math.min(...values);
  });
  const ratios = pairedRatios(m.moe, best);
  return { name: m.name, higherIsBetter: m.higherIsBetter, moe: spread(m.moe), llama, vsBest: { ratio: spread(ratios), ratios } };
}

export interface GuardVerdict {
  steps: number;
  /** Leading greedy tokens both engines chose alike. */
  agreeing: number;
  /** Largest |log p| difference over the tokens both listed, while both saw the same context. */
  maxLogprobDiff: number;
  /** Where they first chose differently, and by how much each preferred its own choice (nats). */
  divergence: { step: number; moeToken: number; llamaToken: number; gapNats: number } | null;
  ok: boolean;
}

/** log p of `token` in a step's list; at most the list's last value when it is not listed. */
function logprobIn(step: GreedyStep, token: number): number {
  const found = step.top.find(([t]) => t === token);
  return found ? found[1] : step.top[step.top.length - 1][1];
}

/**
 * Compares two greedy runs of the same prompt. They may part at a near-tie (the engines sum in
 * different orders; 4-bit kernels quantise activations differently), but not where either
 * engine clearly preferred its own token, and the log-probabilities of the tokens both list
 * must agree within `maxDiffNats`: a mis-written weight moves them by far more.
 */
export function judgeGreedy(moe: GreedyStep[], llama: GreedyStep[], tieNats: number, maxDiffNats: number): GuardVerdict {
  const steps = Math.min(moe.length, llama.length);
  let agreeing = 0;
  while (agreeing < steps && moe[agreeing].token === llama[agreeing].token) agreeing++;
  let maxLogprobDiff = 0;
  for (let s = 0; s < Math.min(steps, agreeing + 1); s++) {
    for (const [token, lp] of moe[s].top) {
      const other = llama[s].top.find(([t]) => t === token);
      if (other) maxLogprobDiff = Math.max(maxLogprobDiff, Math.abs(lp - other[1]));
    }
  }
  let divergence: GuardVerdict['divergence'] = null;
  if (agreeing < steps) {
    const a = moe[agreeing];
    const b = llama[agreeing];
    const gap = Math.max(logprobIn(a, a.token) - logprobIn(a, b.token), logprobIn(b, b.token) - logprobIn(b, a.token));
    divergence = { step: agreeing, moeToken: a.token, llamaToken: b.token, gapNats: gap };
  }
  const ok = maxLogprobDiff <= maxDiffNats && (divergence === null || divergence.gapNats <= tieNats);
  return { steps, agreeing, maxLogprobDiff, divergence, ok };
}
