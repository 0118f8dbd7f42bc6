// Teacher-forced scoring of a prompt, in the same prefill that fills its cache: the step
// returns the logits of every prompt position a request wants scored, and each row becomes
// the logprob of the prompt's next token, its rank, the top k alternatives and the
// probability mass outside them. Values come from the raw logits (penalties and sampling
// settings never apply), optionally divided by a temperature for distillation.
import type { StepSequence } from '../../runtime/step-batch.ts';
import type { PromptLogprobs } from './api.ts';
import { expNonPositive } from './fast-exp.ts';
import { selectBest } from './rank-heap.ts';
import type { Sequence } from './sequence.ts';

/** The prompt positions one step scores for a sequence, and the logits rows they come from. */
export interface ScoringWindow {
  /** First position scored; its logits are the output of the token just before it. */
  firstPosition: number;
  count: number;
  /** Row of firstPosition within the sequence's tokens of the step. */
  firstRow: number;
}

/**
 * Which prompt positions a step over tokens [start, start + numTokens) of `seq` scores: the
 * token at position p is predicted by the row of position p - 1, so the step reaches
 * positions start + 1 .. start + numTokens, of which those not scored yet and before the
 * prompt's end are taken.
 */
export function scoringWindow(seq: Sequence, start: number, numTokens: number): ScoringWindow | null {
  if (!seq.isScoringPrompt) return null;
  const first = Math.max(seq.nextScoredPosition, start + 1);
  const last = Math.min(seq.promptTokens.length - 1, start + numTokens);
  if (first > last) return null;
  if (seq.nextScoredPosition < start + 1) {
    // The cache limit (Sequence.maxPrefixCachedTokens) exists to prevent exactly this.
    throw new Error(`prompt positions ${seq.nextScoredPosition}..${start} were never computed, so they cannot be scored`);
  }
  return { firstPosition: first, count: last - first + 1, firstRow: first - 1 - start };
}

/**
 * The logits rows a step must return for a sequence: the scored rows (a suffix of its tokens
 * up to the prompt's end) and the last row when it samples. Scored rows run to the chunk's
 * end unless the chunk passes the prompt's end, which only a recomputed sequence does.
 */
export function logitRows(window: ScoringWindow | null, numTokens: number, samples: boolean): StepSequence['logits'] {
  const first = Math.min(window?.firstRow ?? numTokens, samples ? numTokens - 1 : numTokens);
  if (first >= numTokens) return 'none';
  if (first === numTokens - 1) return 'last';
  return first === 0 ? 'all' : { fromRow: first };
}

/** How many rows `logits` asks of a sequence with `numTokens` new tokens. */
export function numLogitRows(logits: StepSequence['logits'], numTokens: number): number {
  if (logits === 'none') return 0;
  if (logits === 'last') return 1;
  if (logits === 'all') return numTokens;
  return numTokens - logits.fromRow;
}

/** Buffers reused across rows; one per engine loop. */
export interface ScoringScratch {
  ids: Int32Array;
  inTop: Uint8Array;
}

export function createScoringScratch(vocabSize: number): ScoringScratch {
  return { ids: new Int32Array(vocabSize), inTop: new Uint8Array(vocabSize) };
}

export function emptyPromptLogprobs(start: number, count: number, topK: number): PromptLogprobs {
  return {
    start,
    tokens: new Int32Array(count),
    logprobs: new Float32Array(count),
    ranks: new Int32Array(count),
    topK,
    topIds: new Int32Array(count * topK),
    topLogprobs: new Float32Array(count * topK),
    tailLogprobs: new Float32Array(count),
  };
}

/**
 * Scores entry `i` of `out` from one logits row: the log-softmax of row / temperature with a
 * float64 sum, each value rounded to float32 once (at temperature 1 the sampler's logSoftmax
 * up to float32 rounding: exp is expNonPositive, within a few float64 ulps of Math.exp). The
 * tail is log(sum of the other tokens' weights) - log(sum of all), the other tokens' weights
 * taken as total - top in float64 unless that would cancel (then summed token by token), never
 * as 1 - sum(top-k probabilities): a tail of 1e-30 keeps its digits.
 */
export function scoreRow(row: Float32Array, token: number, temperature: number, out: PromptLogprobs, i: number, s: ScoringScratch): void {
  const n = row.length;
  const k = out.topK;
  const count = selectBest(row, Math.min(k, n), s.ids);
  const maxLogit = count > 0 ? row[s.ids[0]] : maxOf(row);
  const tokenLogit = row[token];
  // Multiplied, not divided: the loop runs over the whole vocabulary (x * 1 is exact at T = 1).
  const scale = 1 / temperature;
  let total = 0;
  let numAbove = 0;
  for (let v = 0; v < n; v++) {
    const logit = row[v];
    total += expNonPositive((logit - maxLogit) * scale);
    numAbove += +(logit > tokenLogit); // branch-free: about half the tokens outrank an unlikely one
  }
  let topWeight = 0;
  for (let j = 0; j < count; j++) topWeight += expNonPositive((row[s.ids[j]] - maxLogit) * scale);
  // The rest as total - top costs no second pass; where the top takes nearly all the mass that
  // difference would lose the rest's digits, so it is summed directly over the other tokens.
  let rest = total - topWeight;
  if (!(rest > total * DIRECT_REST_BELOW)) rest = restSummedDirectly(row, maxLogit, scale, count, s);
  const logTotal = Math.log(total);
  const at = i * k;
  for (let j = 0; j < count; j++) {
    const id = s.ids[j];
    out.topIds[at + j] = id;
    out.topLogprobs[at + j] = (row[id] - maxLogit) * scale - logTotal;
  }
  // Fewer than k candidates (a tiny vocabulary, NaN logits): the rest of the row says so.
  for (let j = count; j < k; j++) {
    out.topIds[at + j] = -1;
    out.topLogprobs[at + j] = -Infinity;
  }
  out.tokens[i] = token;
  out.logprobs[i] = (tokenLogit - maxLogit) * scale - logTotal;
  out.ranks[i] = numAbove + 1;
  out.tailLogprobs[i] = rest > 0 ? Math.log(rest) - logTotal : -Infinity;
}

/**
 * Below this share of the total, the rest is summed token by token. Above it, total - top
 * loses at most 20 of float64's 53 bits, keeping far more than the float32 it is stored in;
 * far below it (a tail of 1e-30) the difference would keep none.
 */
const DIRECT_REST_BELOW = 2 ** -20;

/** The weights of every token outside the top `count` ids of s.ids, summed. */
function restSummedDirectly(row: Float32Array, maxLogit: number, scale: number, count: number, s: ScoringScratch): number {
  for (let j = 0; j < count; j++) s.inTop[s.ids[j]] = 1;
  let rest = 0;
  for (let v = 0; v < row.length; v++) if (s.inTop[v] === 0) rest += expNonPositive((row[v] - maxLogit) * scale);
  for (let j = 0; j < count; j++) s.inTop[s.ids[j]] = 0;
  return rest;
}

function maxOf(row: Float32Array): number {
  let max = -Infinity;
  for (let v = 0; v < row.length; v++) if (row[v] > max) max = row[v];
  return max;
}

/** Scores a window of `seq`'s prompt from its step logits rows (rows[0] = the window's first row). */
export function scoreWindow(
  seq: Sequence,
  window: ScoringWindow,
  rowOf: (row: number) => Float32Array,
  scratch: ScoringScratch,
): PromptLogprobs {
  const options = seq.params.promptLogprobs;
  if (options == null) throw new Error('scoreWindow: the sequence does not score its prompt');
  const temperature = options.temperature ?? 1;
  const out = emptyPromptLogprobs(window.firstPosition, window.count, options.topK);
  for (let i = 0; i < window.count; i++) {
    const position = window.firstPosition + i;
    scoreRow(rowOf(window.firstRow + i), seq.promptTokens[position], temperature, out, i, scratch);
  }
  seq.nextScoredPosition = window.firstPosition + window.count;
  return out;
}

/** The buffers of a step's scores, to transfer rather than copy across threads. */
export function promptLogprobsBuffers(scores: PromptLogprobs): ArrayBuffer[] {
  const arrays = [scores.tokens, scores.logprobs, scores.ranks, scores.topIds, scores.topLogprobs, scores.tailLogprobs];
  return arrays.flatMap((a) => (a.buffer instanceof ArrayBuffer ? [a.buffer] : []));
}
