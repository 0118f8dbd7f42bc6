// Every check the engine makes of a request's values, before its sequence joins a batch: a
// bad value found mid-step would fail every running request. The OpenAI layer refuses the
// same things earlier with the field names clients know; this is the engine's own gate, for
// every caller (routes, the CLI, batch jobs, tests).
import { firstOutsideVocabulary, isTokenId, outsideVocabularyMessage } from '../../models/vocabulary.ts';
import type { TextTokenizer } from '../tokenizer/tokenizer.ts';
import { type GenerationRequest, MAX_PROMPT_TOP_K, type PromptLogprobsOptions, type SamplingParams } from './api.ts';
import { IncrementalDetokenizer } from './detokenizer.ts';
import { Sequence } from './sequence.ts';

export interface RequestLimits {
  vocabSize: number;
  /** Longest prompt + output. */
  maxModelLen: number;
}

/**
 * Throws a RangeError naming the first unusable field. The engine checks requests with this
 * before they join a batch: a bad value found mid-step would fail every running request.
 */
export function validateSamplingParams(p: SamplingParams, vocabSize: number): void {
  const check = (ok: boolean, field: string, rule: string, value: unknown): void => {
    if (!ok) throw new RangeError(`${field} must be ${rule}, got ${String(value)}`);
  };
  check(Number.isFinite(p.temperature) && p.temperature >= 0, 'temperature', 'a finite number >= 0', p.temperature);
  check(Number.isSafeInteger(p.topK) && p.topK >= 0, 'topK', 'an integer >= 0', p.topK);
  check(p.topP >= 0 && p.topP <= 1, 'topP', 'in [0, 1] (0 keeps only the top token)', p.topP);
  check(p.minP >= 0 && p.minP <= 1, 'minP', 'in [0, 1]', p.minP);
  check(Number.isFinite(p.presencePenalty), 'presencePenalty', 'a finite number', p.presencePenalty);
  check(Number.isFinite(p.frequencyPenalty), 'frequencyPenalty', 'a finite number', p.frequencyPenalty);
  check(Number.isFinite(p.repetitionPenalty) && p.repetitionPenalty > 0, 'repetitionPenalty', 'a finite number > 0', p.repetitionPenalty);
  for (const [token, bias] of p.logitBias ?? []) {
    check(isTokenId(token, vocabSize), 'logitBias', `keyed by token ids in 0..${vocabSize - 1}`, token);
    check(Number.isFinite(bias), 'logitBias', 'finite values', bias);
  }
}

export function validatePromptLogprobs(p: PromptLogprobsOptions): void {
  if (!Number.isSafeInteger(p.topK) || p.topK < 0 || p.topK > MAX_PROMPT_TOP_K) {
    throw new RangeError(`promptLogprobs.topK must be an integer in 0..${MAX_PROMPT_TOP_K}, got ${p.topK}`);
  }
  if (p.from !== undefined && (!Number.isSafeInteger(p.from) || p.from < 1)) {
    throw new RangeError(`promptLogprobs.from must be an integer of at least 1, got ${p.from}`);
  }
  const temperature = p.temperature ?? 1;
  if (!Number.isFinite(temperature) || temperature <= 0) {
    throw new RangeError(`promptLogprobs.temperature must be a finite number > 0, got ${temperature}`);
  }
}

/** The request's sequence, its maxTokens clamped to what the context leaves; a RangeError names what cannot run. */
export function createSequence(id: string, request: GenerationRequest, tokenizer: TextTokenizer, limits: RequestLimits): Sequence {
  const prompt = typeof request.prompt === 'string' ? tokenizer.encode(request.prompt) : request.prompt;
  const { vocabSize, maxModelLen } = limits;
  if (prompt.length === 0) throw new RangeError('the prompt is empty');
  const scoring = request.promptLogprobs ?? null;
  if (scoring !== null) validatePromptLogprobs(scoring);
  const minTokens = scoring === null ? 1 : 0;
  if (!Number.isSafeInteger(request.maxTokens) || request.maxTokens < minTokens) {
    const rule = scoring === null ? 'at least 1 (0 only when scoring the prompt)' : 'at least 0';
    throw new RangeError(`maxTokens must be an integer of ${rule}, got ${request.maxTokens}`);
  }
  validateSamplingParams(request.sampling, vocabSize);
  const bad = firstOutsideVocabulary(prompt, vocabSize);
  if (bad >= 0) throw new RangeError(`prompt ${outsideVocabularyMessage(prompt[bad], vocabSize)}`);
  if (prompt.length >= maxModelLen) {
    throw new RangeError(`the prompt has ${prompt.length} tokens; the context holds ${maxModelLen} including at least one generated token`);
  }
  const maxTokens = Math.min(request.maxTokens, maxModelLen - prompt.length);
  const params = { ...request, maxTokens };
  return new Sequence(id, prompt, params, new IncrementalDetokenizer(tokenizer, prompt));
}
