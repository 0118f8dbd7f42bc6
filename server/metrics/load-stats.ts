// Balance of one layer's expert load (tokens routed to each expert). Definitions, stated
// because servers differ: max/mean ratio (1 = even; TensorRT-LLM's imbalance is ratio - 1,
// SGLang's balancedness is its inverse), coefficient of variation (population std / mean),
// entropy of the load distribution over experts divided by ln(numExperts) (1 = even, 0 = one
// expert takes everything), and the fraction of experts that received any token.

export interface LoadSummary {
  /** Expert choices in the window (tokens x top-k). */
  numAssignments: number;
  maxMeanRatio: number;
  /** (max - mean) / mean. */
  imbalance: number;
  coefficientOfVariation: number;
  normalizedEntropy: number;
  activeFraction: number;
}

const EMPTY: LoadSummary = {
  numAssignments: 0,
  maxMeanRatio: 0,
  imbalance: 0,
  coefficientOfVariation: 0,
  normalizedEntropy: 0,
  activeFraction: 0,
};

/** Every statistic is 0 while there is no load at all (nothing routed yet). */
export function summarizeLoad(loads: ArrayLike<number>): LoadSummary {
  const numExperts = loads.length;
  let total = 0;
  let max = 0;
  let numActive = 0;
  for (let e = 0; e < numExperts; e++) {
    total += loads[e];
    if (loads[e] > max) max = loads[e];
    if (loads[e] > 0) numActive++;
  }
  if (total === 0) return { ...EMPTY };
  const mean = total / numExperts;
  let squares = 0;
  let entropy = 0;
  for (let e = 0; e < numExperts; e++) {
    squares += (loads[e] - mean) ** 2;
    const p = loads[e] / total;
    if (p > 0) entropy -= p * Math.log(p);
  }
  return {
    numAssignments: total,
    maxMeanRatio: max / mean,
    imbalance: (max - mean) / mean,
    coefficientOfVariation: Math.sqrt(squares / numExperts) / mean,
    // One expert is trivially even.
    normalizedEntropy: numExperts > 1 ? entropy / Math.log(numExperts) : 1,
    activeFraction: numActive / numExperts,
  };
}
