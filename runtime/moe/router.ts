// Router gating: router logits -> (expert id, weight) pairs per token.
// Each family's gate is a configuration of the same steps (see reference/moe-routing.md):
//   score (softmax | sigmoid) -> selection scores (+ correction bias) -> group mask
//   -> top-k -> weights from the unbiased scores -> renormalise -> scale.
// Shared experts (DeepSeek, Qwen2-MoE's sigmoid shared gate) are outside routing: the caller
// combines them, using `sigmoid` from here for Qwen2-MoE's gate.
//
// Precision: scores are computed in float64 (Math.exp) and rounded to float32 once. The
// references compute softmax in float32, so a score may differ by about one ulp; selection
// can only differ from theirs when two experts' scores are within that ulp.

export interface GatingConfig {
  numExperts: number;
  topK: number;
  scoringFunc: 'softmax' | 'sigmoid';
  /** Renormalise the chosen weights to sum to one. */
  normTopkProb: boolean;
  /** DeepSeekMoE (HF modeling_deepseek.py) renormalises only when top_k > 1. */
  renormalizeOnlyIfTopkGt1?: boolean;
  /** Multiplies the routed weights after renormalisation; 1 for most families. */
  routedScalingFactor: number;
  /** DeepSeek-V3: added to the scores for selection only; weights come from unbiased scores. */
  correctionBias?: Float32Array;
  /** Grouped selection (DeepSeek-V2/V3): experts split into numGroups equal groups. */
  numGroups?: number;
  topkGroups?: number;
  /** 'max' of the group's selection scores (V2) or the sum of its top two (V3). */
  groupScore?: 'max' | 'top2-sum';
  /**
   * Selection score given to experts of dropped groups. Default -Infinity (DeepSeek's code,
   * vLLM); Hugging Face transformers uses 0, which differs only when selection scores can be
   * negative (a negative correction bias). Families matching HF pass 0.
   */
  maskedGroupScore?: number;
}

/** Both arrays are [numTokens * topK], token-major; within a token, descending selection score. */
export interface RoutingResult {
  expertIds: Int32Array;
  weights: Float32Array;
}

/** Added to the renormalisation denominator, as the DeepSeek references do. */
export const RENORM_EPSILON = 1e-20;

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function sigmoidInPlace(row: Float32Array, offset = 0, length = row.length - offset): void {
  const end = offset + length;
  for (let i = offset; i < end; i++) row[i] = 1 / (1 + Math.exp(-row[i]));
}

/** Max-subtracted softmax over row[offset, offset + length), float64 sum, float32 results. */
export function softmaxInPlace(row: Float32Array, offset = 0, length = row.length - offset): void {
  const end = offset + length;
  let max = -Infinity;
  for (let i = offset; i < end; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = offset; i < end; i++) sum += Math.exp(row[i] - max);
  // exp is recomputed rather than stored so each result is rounded to float32 only once.
  for (let i = offset; i < end; i++) row[i] = Math.exp(row[i] - max) / sum;
}

/** NaN ranks as -Infinity so a broken score can never displace a real one. */
function rankKey(scores: Float32Array, i: number): number {
  const v = scores[i];
  return v === v ? v : -Infinity;
}

/**
 * Writes the indices of the k highest scores to idxOut[outOffset...], highest first; equal
 * scores -> lower index first. Indices with mask[i] === 0 are skipped. Returns how many were
 * written (less than k only when fewer than k indices are allowed; the rest are set to -1).
 * Insertion into a sorted window: O(n * k) worst case, cheapest for the small k of routing.
 */
export function selectTopK(scores: Float32Array, k: number, idxOut: Int32Array, mask?: Uint8Array, outOffset = 0): number {
  let count = 0;
  const n = scores.length;
  for (let e = 0; e < n; e++) {
    if (mask !== undefined && mask[e] === 0) continue;
    const v = rankKey(scores, e);
    let j: number;
    if (count < k) {
      j = count++;
    } else {
      // Strict: an equal later index never displaces an earlier one.
      if (k === 0 || !(v > rankKey(scores, idxOut[outOffset + k - 1]))) continue;
      j = k - 1;
    }
    while (j > 0 && v > rankKey(scores, idxOut[outOffset + j - 1])) {
      idxOut[outOffset + j] = idxOut[outOffset + j - 1];
      j--;
    }
    idxOut[outOffset + j] = e;
  }
  for (let j = count; j < k; j++) idxOut[outOffset + j] = -1;
  return count;
}

/** Scores each of the numGroups equal groups of selScores into groupScores. */
function scoreGroups(selScores: Float32Array, numGroups: number, groupScore: 'max' | 'top2-sum', groupScores: Float32Array): void {
  const groupSize = selScores.length / numGroups;
  for (let g = 0; g < numGroups; g++) {
    let first = -Infinity;
    let second = -Infinity;
    for (let e = g * groupSize, end = e + groupSize; e < end; e++) {
      const v = rankKey(selScores, e);
      if (v > first) {
        second = first;
        first = v;
      } else if (v > second) {
        second = v;
      }
    }
    // A one-expert group's "top two" is that expert alone.
    groupScores[g] = groupScore === 'max' || groupSize === 1 ? first : first + second;
  }
}

/**
 * Keeps the topkGroups best groups (ties -> lower group index) and overwrites the selection
 * scores of every expert in the other groups with `fill`, in place.
 */
export function maskGroups(
  selScores: Float32Array,
  numGroups: number,
  topkGroups: number,
  groupScore: 'max' | 'top2-sum',
  fill = -Infinity,
  groupScores: Float32Array = new Float32Array(numGroups),
  groupIds: Int32Array = new Int32Array(topkGroups),
): void {
  scoreGroups(selScores, numGroups, groupScore, groupScores);
  selectTopK(groupScores, topkGroups, groupIds);
  const groupSize = selScores.length / numGroups;
  for (let g = 0; g < numGroups; g++) {
    let kept = false;
    for (let j = 0; j < topkGroups; j++) if (groupIds[j] === g) kept = true;
    if (!kept) selScores.fill(fill, g * groupSize, (g + 1) * groupSize);
  }
}

/** weights[offset, offset + length) /= (sum + 1e-20); the sum is accumulated in float64. */
export function renormalize(weights: Float32Array, offset: number, length: number): void {
  let sum = 0;
  for (let i = offset; i < offset + length; i++) sum += weights[i];
  const denominator = sum + RENORM_EPSILON;
  for (let i = offset; i < offset + length; i++) weights[i] = weights[i] / denominator;
}

export function scaleWeights(weights: Float32Array, offset: number, length: number, factor: number): void {
  if (factor === 1) return;
  for (let i = offset; i < offset + length; i++) weights[i] = weights[i] * factor;
}

/** Throws RangeError for a configuration routeTokens cannot honour. */
export function validateGatingConfig(cfg: GatingConfig): void {
  const { numExperts, topK } = cfg;
  if (!Number.isInteger(numExperts) || numExperts < 1) throw new RangeError(`numExperts must be a positive integer, got ${numExperts}`);
  if (!Number.isInteger(topK) || topK < 1 || topK > numExperts) throw new RangeError(`topK must be in [1, ${numExperts}], got ${topK}`);
  if (cfg.correctionBias !== undefined && cfg.correctionBias.length !== numExperts) {
    throw new RangeError(`correctionBias has ${cfg.correctionBias.length} entries, expected ${numExperts}`);
  }
  const numGroups = cfg.numGroups ?? 1;
  if (numGroups <= 1) return;
  const topkGroups = cfg.topkGroups ?? numGroups;
  if (!Number.isInteger(numGroups) || numExperts % numGroups !== 0) {
    throw new RangeError(`numGroups ${numGroups} must divide numExperts ${numExperts}`);
  }
  if (!Number.isInteger(topkGroups) || topkGroups < 1 || topkGroups > numGroups) {
    throw new RangeError(`topkGroups must be in [1, ${numGroups}], got ${topkGroups}`);
  }
  if (topkGroups * (numExperts / numGroups) < topK) {
    throw new RangeError(`topkGroups ${topkGroups} groups hold fewer than topK ${topK} experts`);
  }
}

interface RoutingScratch {
  scores: Float32Array;
  selScores: Float32Array;
  groupScores: Float32Array;
  groupIds: Int32Array;
}

function createScratch(cfg: GatingConfig): RoutingScratch {
  const scores = new Float32Array(cfg.numExperts);
  const grouped = (cfg.numGroups ?? 1) > 1;
  // Selection scores alias the scores unless something modifies them before selection.
  const selScores = grouped || cfg.correctionBias !== undefined ? new Float32Array(cfg.numExperts) : scores;
  return {
    scores,
    selScores,
    groupScores: new Float32Array(grouped ? (cfg.numGroups ?? 1) : 0),
    groupIds: new Int32Array(grouped ? (cfg.topkGroups ?? cfg.numGroups ?? 1) : 0),
  };
}

function routeOneToken(logits: Float32Array, token: number, cfg: GatingConfig, s: RoutingScratch, out: RoutingResult): void {
  const numExperts = cfg.numExperts;
  const { scores, selScores } = s;
  const rowStart = token * numExperts;
  for (let e = 0; e < numExperts; e++) scores[e] = logits[rowStart + e];
  if (cfg.scoringFunc === 'softmax') softmaxInPlace(scores);
  else sigmoidInPlace(scores);
  const bias = cfg.correctionBias;
  if (bias !== undefined) for (let e = 0; e < numExperts; e++) selScores[e] = scores[e] + bias[e];
  else if (selScores !== scores) selScores.set(scores);
  const numGroups = cfg.numGroups ?? 1;
  if (numGroups > 1) {
    const topkGroups = cfg.topkGroups ?? numGroups;
    const fill = cfg.maskedGroupScore ?? -Infinity;
    maskGroups(selScores, numGroups, topkGroups, cfg.groupScore ?? 'max', fill, s.groupScores, s.groupIds);
  }
  const k = cfg.topK;
  const offset = token * k;
  selectTopK(selScores, k, out.expertIds, undefined, offset);
  for (let j = 0; j < k; j++) out.weights[offset + j] = scores[out.expertIds[offset + j]];
  if (cfg.normTopkProb && (k > 1 || cfg.renormalizeOnlyIfTopkGt1 !== true)) renormalize(out.weights, offset, k);
  scaleWeights(out.weights, offset, k, cfg.routedScalingFactor);
}

/**
 * Routes numTokens rows of router logits ([numTokens, numExperts], row-major). When `out` is
 * given its arrays must hold at least numTokens * topK entries; results fill their prefix.
 */
export function routeTokens(logits: Float32Array, numTokens: number, cfg: GatingConfig, out?: RoutingResult): RoutingResult {
  validateGatingConfig(cfg);
  const size = numTokens * cfg.topK;
  if (logits.length < numTokens * cfg.numExperts) {
    throw new RangeError(`logits hold ${logits.length} values, need ${numTokens} x ${cfg.numExperts}`);
  }
  const result = out ?? { expertIds: new Int32Array(size), weights: new Float32Array(size) };
  if (result.expertIds.length < size || result.weights.length < size) {
    throw new RangeError(`routing output holds fewer than ${numTokens} x ${cfg.topK} entries`);
  }
  const scratch = createScratch(cfg);
  for (let t = 0; t < numTokens; t++) routeOneToken(logits, t, cfg, scratch, result);
  return result;
}

/**
 * A checksum of a routing's expert choices (FNV-1a over the ids), 0 for none: rank 0 compares
 * every shard's with its own, so shards that ever routed apart fail the step loudly instead of
 * each computing its slices of different experts.
 */
export function routingChecksum(route: RoutingResult | null): number {
  if (!route) return 0;
  let hash = 0x811c9dc5;
  for (const id of route.expertIds) hash = Math.imul(hash ^ id, 0x01000193);
  return hash | 0;
}
