// The sampler: one logits row -> the next token id, and exact log-softmax for logprobs.
// A step's order: logprobs from the raw logits (OpenAI reports the model's distribution),
// then applyPenalties in place, then sampleToken. Inside sampleToken: temperature -> top-k ->
// top-p -> min-p -> one draw. Only the candidates a filter keeps are ever sorted; with no
// filters nothing is sorted at all.
import { heapifyBest, popBest, selectBest } from './rank-heap.ts';
import { isTokenId, outsideVocabularyMessage } from '../../models/vocabulary.ts';
import type { SamplingParams } from './api.ts';
import type { RandomSource } from './rng.ts';

/** Below this temperature sampling is greedy: dividing logits by it would overflow (vLLM too). */
export const GREEDY_TEMPERATURE = 1e-5;

/**
 * Top-p without top-k first sorts only tokens at least this likely relative to the most likely
 * one, widening only when they hold less than top_p of the mass (rare for real models).
 */
const NUCLEUS_THRESHOLDS = [1e-4, 1e-8, 1e-16, Number.MIN_VALUE];

/** Per-vocabulary buffers reused across calls; one per engine loop, never shared concurrently. */
export interface SamplerScratch {
  weights: Float64Array;
  ids: Int32Array;
}

export function createSamplerScratch(vocabSize: number): SamplerScratch {
  return { weights: new Float64Array(vocabSize), ids: new Int32Array(vocabSize) };
}

function checkToken(token: number, vocabSize: number, what: string): void {
  if (!isTokenId(token, vocabSize)) throw new RangeError(`${what} ${outsideVocabularyMessage(token, vocabSize)}`);
}

/** The largest finite float32: a penalised logit is held inside the range, never infinite. */
const FLOAT32_MAX = 3.4028234663852886e38;

function penalizeRepeat(logits: Float32Array, token: number, penalty: number): void {
  checkToken(token, logits.length, 'penalised');
  const logit = logits[token];
  // A tiny penalty divides a positive logit past float32's range: stored as is it would become
  // Infinity and leave nothing to sample from, so it saturates instead (still the largest).
  const penalised = logit > 0 ? logit / penalty : logit * penalty;
  logits[token] = Math.max(-FLOAT32_MAX, Math.min(FLOAT32_MAX, penalised));
}

/**
 * In place, in vLLM's order: logit_bias added; repetition_penalty (HF/vLLM: positive logits
 * divided, negative multiplied, each token of prompt + generated once); then OpenAI's
 * `logit -= count * frequency_penalty + (count > 0) * presence_penalty` over generated tokens.
 * tokenCounts maps generated token id -> times generated.
 */
export function applyPenalties(
  logits: Float32Array,
  params: SamplingParams,
  tokenCounts: Map<number, number>,
  promptTokens?: ReadonlySet<number>,
): void {
  const vocabSize = logits.length;
  if (params.logitBias !== null) {
    for (const [token, bias] of params.logitBias) {
      checkToken(token, vocabSize, 'logit_bias');
      logits[token] += bias;
    }
  }
  const repetition = params.repetitionPenalty;
  if (repetition !== 1) {
    if (promptTokens !== undefined) for (const token of promptTokens) penalizeRepeat(logits, token, repetition);
    for (const [token, count] of tokenCounts) {
      if (count > 0 && promptTokens?.has(token) !== true) penalizeRepeat(logits, token, repetition);
    }
  }
  const { presencePenalty, frequencyPenalty } = params;
  if (presencePenalty === 0 && frequencyPenalty === 0) return;
  for (const [token, count] of tokenCounts) {
    if (count <= 0) continue;
    checkToken(token, vocabSize, 'generated');
    logits[token] = logits[token] - count * frequencyPenalty - presencePenalty;
  }
}

/** Index of the largest logit; ties -> lowest id; NaN never wins. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

function checkMaxLogit(maxLogit: number): void {
  if (!Number.isFinite(maxLogit)) throw new RangeError(`cannot sample: the largest logit is ${maxLogit}`);
}

/** weights[i] = exp((logit_i - max) / T) in float64 (NaN logits -> 0); returns their sum. */
function computeWeights(logits: Float32Array, temperature: number, weights: Float64Array): number {
  let maxLogit = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > maxLogit) maxLogit = logits[i];
  checkMaxLogit(maxLogit);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const w = Math.exp((logits[i] - maxLogit) / temperature);
    const safe = w === w ? w : 0;
    weights[i] = safe;
    total += safe;
  }
  return total;
}

/** Shortest prefix of the ranked ids whose weights sum to >= target (at least one). */
function nucleusLength(weights: Float64Array, ids: Int32Array, count: number, target: number): number {
  let cum = 0;
  for (let j = 0; j < count; j++) {
    cum += weights[ids[j]];
    if (cum >= target) return j + 1;
  }
  return count;
}

/**
 * Top-p over the whole vocabulary: ranks only a band of likely tokens (a prefix of the rank
 * order, so its running sum is the true cumulative probability) and pops from a heap until the
 * target mass is reached. Leaves the nucleus ranked in ids[0, length) and returns length.
 */
function nucleusByThreshold(logits: Float32Array, weights: Float64Array, target: number, ids: Int32Array): number {
  const n = logits.length;
  for (let t = 0; t < NUCLEUS_THRESHOLDS.length; t++) {
    const threshold = NUCLEUS_THRESHOLDS[t];
    let size = 0;
    for (let i = 0; i < n; i++) if (weights[i] >= threshold) ids[size++] = i;
    heapifyBest(logits, ids, size);
    let cum = 0;
    let popped = 0;
    // At least one pop: the most likely token always survives (top_p = 0 keeps it alone).
    do cum += weights[popBest(logits, ids, size - popped++)];
    while (popped < size && cum < target);
    if (cum >= target || t === NUCLEUS_THRESHOLDS.length - 1) {
      // Popped ids sit at the back, best last: move them to the front, best first.
      ids.copyWithin(0, size - popped, size);
      ids.subarray(0, popped).reverse();
      return popped;
    }
  }
  return 0; // unreachable: the last threshold always returns
}

/** Drops ranked candidates less likely than minP times the most likely one (keeps >= 1). */
function minPLength(weights: Float64Array, ids: Int32Array, count: number, minP: number): number {
  if (minP <= 0) return count;
  const threshold = minP * weights[ids[0]];
  for (let j = 1; j < count; j++) if (weights[ids[j]] < threshold) return j;
  return count;
}

/** One draw over the ranked ids[0, count), walking them in rank order. */
function drawRanked(weights: Float64Array, ids: Int32Array, count: number, rng: RandomSource): number {
  let total = 0;
  for (let j = 0; j < count; j++) total += weights[ids[j]];
  const target = rng.nextFloat() * total;
  let cum = 0;
  let lastPositive = ids[0];
  for (let j = 0; j < count; j++) {
    const w = weights[ids[j]];
    if (w <= 0) continue;
    cum += w;
    lastPositive = ids[j];
    if (cum > target) return ids[j];
  }
  return lastPositive; // only reached through rounding
}

/** One draw over the whole vocabulary in id order, optionally min-p filtered (max weight is 1). */
function drawUnranked(weights: Float64Array, n: number, total: number, minP: number, rng: RandomSource): number {
  const threshold = minP > 0 ? minP : Number.MIN_VALUE;
  if (minP > 0) {
    total = 0;
    for (let i = 0; i < n; i++) if (weights[i] >= threshold) total += weights[i];
  }
  const target = rng.nextFloat() * total;
  let cum = 0;
  let lastKept = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i];
    if (w < threshold) continue;
    cum += w;
    lastKept = i;
    if (cum > target) return i;
  }
  return lastKept; // only reached through rounding
}

function sampleTopK(logits: Float32Array, params: SamplingParams, rng: RandomSource, s: SamplerScratch): number {
  const { weights, ids } = s;
  const count = selectBest(logits, params.topK, ids);
  if (count === 0) throw new RangeError('cannot sample: every logit is NaN');
  const maxLogit = logits[ids[0]];
  checkMaxLogit(maxLogit);
  let total = 0;
  for (let j = 0; j < count; j++) {
    const w = Math.exp((logits[ids[j]] - maxLogit) / params.temperature);
    weights[ids[j]] = w;
    total += w;
  }
  // top-p renormalises over the top-k survivors, as HF and vLLM do.
  const kept = params.topP < 1 ? nucleusLength(weights, ids, count, params.topP * total) : count;
  return drawRanked(weights, ids, minPLength(weights, ids, kept, params.minP), rng);
}

/**
 * Samples one token. Greedy (argmax, ties -> lowest id, no draw) when temperature is below
 * GREEDY_TEMPERATURE or topK is 1. Otherwise exactly one rng.nextFloat() per call. top-k keeps
 * exactly k tokens (ties at the boundary -> lower ids; HF and vLLM keep every tied token).
 * top-p keeps the smallest rank-order prefix with cumulative probability >= topP. min-p drops
 * tokens with probability < minP * max probability. logits is not modified.
 */
export function sampleToken(logits: Float32Array, params: SamplingParams, rng: RandomSource, scratch?: SamplerScratch): number {
  if (params.temperature < GREEDY_TEMPERATURE || params.topK === 1) return argmax(logits);
  const n = logits.length;
  const fits = scratch !== undefined && scratch.weights.length >= n && scratch.ids.length >= n;
  const s = fits ? scratch : createSamplerScratch(n);
  if (params.topK > 0 && params.topK < n) return sampleTopK(logits, params, rng, s);
  const total = computeWeights(logits, params.temperature, s.weights);
  if (params.topP >= 1) return drawUnranked(s.weights, n, total, params.minP, rng);
  const kept = nucleusByThreshold(logits, s.weights, params.topP * total, s.ids);
  return drawRanked(s.weights, s.ids, minPLength(s.weights, s.ids, kept, params.minP), rng);
}

/** log_softmax(logits): max-subtracted, float64 sum, each value rounded to float32 once. */
export function logSoftmax(logits: Float32Array, out?: Float32Array): Float32Array {
  const n = logits.length;
  const result = out ?? new Float32Array(n);
  if (result.length < n) throw new RangeError(`logSoftmax output holds ${result.length}, need ${n}`);
  let maxLogit = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > maxLogit) maxLogit = logits[i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i] - maxLogit);
  const logSum = Math.log(sum);
  for (let i = 0; i < n; i++) result[i] = logits[i] - maxLogit - logSum;
  return result;
}

/** The n most likely tokens, descending; ties -> lower id first; NaN entries never listed. */
export function topLogprobs(logprobs: Float32Array, n: number): Array<{ token: number; logprob: number }> {
  const k = Math.min(Math.max(0, Math.floor(n)), logprobs.length);
  const ids = new Int32Array(k);
  const count = selectBest(logprobs, k, ids);
  const result: Array<{ token: number; logprob: number }> = [];
  for (let j = 0; j < count; j++) result.push({ token: ids[j], logprob: logprobs[ids[j]] });
  return result;
}
