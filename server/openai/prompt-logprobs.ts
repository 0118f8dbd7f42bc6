// Prompt scores (the engine's teacher-forced logprobs of each prompt token) in the shapes
// clients know: OpenAI's legacy `echo` + `logprobs` on completions (the prompt's tokens lead
// the logprobs columns, the first with null), and vLLM's `prompt_logprobs` (per prompt token
// a dict of token id -> {logprob, rank, decoded_token}, the first entry null).
import type { PromptLogprobs } from '../engine/api.ts';
import { type CompletionEntry, safeLogprob, type TokenTexts } from './logprobs.ts';

/** One scored prompt position: its token's logprob and rank, and the top alternatives. */
export interface PromptTokenLogprob {
  token: number;
  logprob: number;
  rank: number;
  top: Array<{ token: number; logprob: number }>;
}

/** Appends an engine event's scores (positions in order) as per-position entries. */
export function appendPromptScores(into: PromptTokenLogprob[], scores: PromptLogprobs): void {
  const k = scores.topK;
  for (let i = 0; i < scores.tokens.length; i++) {
    const top: PromptTokenLogprob['top'] = [];
    for (let j = 0; j < k; j++) {
      const token = scores.topIds[i * k + j];
      if (token >= 0) top.push({ token, logprob: scores.topLogprobs[i * k + j] });
    }
    into.push({ token: scores.tokens[i], logprob: scores.logprobs[i], rank: scores.ranks[i], top });
  }
}

/**
 * The echoed prompt's column entries: its first token with no logprob, then each scored
 * position with `numTop` alternatives (the completions `logprobs` value).
 */
export function echoEntries(firstToken: number, scored: readonly PromptTokenLogprob[], numTop: number): CompletionEntry[] {
  return [
    { token: firstToken, logprob: null, top: [] },
    ...scored.map((entry) => ({ token: entry.token, logprob: entry.logprob, top: entry.top.slice(0, numTop) })),
  ];
}

export interface VllmLogprob {
  logprob: number;
  rank: number;
  decoded_token: string;
}

/**
 * vLLM's prompt_logprobs: null for the first token, then per position the prompt token and
 * the top `numTop`, keyed by token id. (JSON objects list integer keys in ascending order,
 * so the keys' order is not the rank order; `rank` says it.)
 */
export function vllmPromptLogprobs(
  scored: readonly PromptTokenLogprob[],
  numTop: number,
  texts: TokenTexts,
): Array<Record<string, VllmLogprob> | null> {
  return [
    null,
    ...scored.map((entry) => {
      const dict: Record<string, VllmLogprob> = {};
      entry.top.slice(0, numTop).forEach((alt, j) => {
        dict[String(alt.token)] = { logprob: safeLogprob(alt.logprob), rank: j + 1, decoded_token: texts.get(alt.token).token };
      });
      dict[String(entry.token)] = { logprob: safeLogprob(entry.logprob), rank: entry.rank, decoded_token: texts.get(entry.token).token };
      return dict;
    }),
  ];
}
