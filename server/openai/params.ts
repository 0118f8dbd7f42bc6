// OpenAI request fields -> engine requests: one GenerationRequest per choice (prompts x n),
// seeds seed, seed + 1, ... so n choices differ yet repeat for the same seed.
import { firstOutsideVocabulary, isTokenId, outsideVocabularyMessage } from '../../models/vocabulary.ts';
import { defaultSamplingParams, type GenerationRequest, type SamplingParams } from '../engine/api.ts';
import { MAX_CHOICES_PER_REQUEST, type samplingFields } from '../schemas/sampling.ts';
import type { ServedModel } from '../served-model.ts';
import { invalidRequest, modelNotFound } from './errors.ts';
import type { Static, TObject } from '@sinclair/typebox';

export type SamplingFields = Static<TObject<typeof samplingFields>>;

/** A request's `model` must name the served model; leaving it out means the served one. */
export function checkModel(requested: string | undefined, model: ServedModel): void {
  if (requested !== undefined && requested !== model.id) throw modelNotFound(requested, model.id);
}

function logitBias(bias: Record<string, number> | undefined, vocabSize: number): Map<number, number> | null {
  if (bias === undefined || Object.keys(bias).length === 0) return null;
  const map = new Map<number, number>();
  for (const [key, value] of Object.entries(bias)) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || !isTokenId(id, vocabSize)) {
      throw invalidRequest(`Invalid 'logit_bias': key "${key}" is not a token id in 0..${vocabSize - 1}.`, 'logit_bias');
    }
    map.set(id, value);
  }
  return map;
}

function samplingParams(body: SamplingFields, vocabSize: number): SamplingParams {
  return {
    ...defaultSamplingParams,
    temperature: body.temperature ?? defaultSamplingParams.temperature,
    // Keeping the whole vocabulary or more is no filter: held at the vocabulary's size.
    topK: body.top_k === undefined || body.top_k < 0 ? 0 : Math.min(body.top_k, vocabSize),
    topP: body.top_p ?? 1,
    minP: body.min_p ?? 0,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    repetitionPenalty: body.repetition_penalty ?? 1,
    logitBias: logitBias(body.logit_bias, vocabSize),
  };
}

function stopTokenIds(body: SamplingFields, model: ServedModel): number[] {
  const extra = body.stop_token_ids ?? [];
  const bad = firstOutsideVocabulary(extra, model.vocabSize);
  if (bad >= 0)
    throw invalidRequest(`Invalid 'stop_token_ids': ${outsideVocabularyMessage(extra[bad], model.vocabSize)}.`, 'stop_token_ids');
  // ignore_eos runs past EOS; explicit stop ids still stop.
  return [...new Set([...(body.ignore_eos === true ? [] : model.eosTokenIds), ...extra])];
}

/**
 * One engine request per choice, prompt-major: choice index = promptIndex * n + j.
 * `topLogprobs` null = no logprobs.
 */
export function choiceRequests(
  body: SamplingFields,
  model: ServedModel,
  prompts: number[][],
  topLogprobs: number | null,
  /** Alternatives per scored prompt position; null: the prompt is not scored. */
  promptTopK: number | null = null,
): GenerationRequest[] {
  const n = body.n ?? 1;
  if (prompts.length * n > MAX_CHOICES_PER_REQUEST) {
    throw invalidRequest(`Too many choices: ${prompts.length} prompt(s) x n=${n} exceeds ${MAX_CHOICES_PER_REQUEST}.`, 'n');
  }
  if (body.seed !== undefined && body.seed + (n - 1) > Number.MAX_SAFE_INTEGER) {
    throw invalidRequest(
      `Invalid 'seed': choice j samples with seed + j, and seed + ${n - 1} is beyond ${Number.MAX_SAFE_INTEGER}.`,
      'seed',
    );
  }
  const sampling = samplingParams(body, model.vocabSize);
  const stops = body.stop === undefined ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  const base = {
    // Without a limit: the rest of the context. Any limit is clamped to the context here (the
    // engine clamps to what the prompt leaves), however large the number sent.
    maxTokens: Math.min(body.max_completion_tokens ?? body.max_tokens ?? model.maxModelLen, model.maxModelLen),
    sampling,
    stopTokenIds: stopTokenIds(body, model),
    ignoreEos: false,
    topLogprobs,
    promptLogprobs: promptTopK === null ? null : { topK: promptTopK },
    stopStrings: stops,
    routedExperts: body.routed_experts === true,
  };
  return prompts.flatMap((prompt) =>
    Array.from({ length: n }, (_, j) => ({ ...base, prompt, seed: body.seed === undefined ? null : body.seed + j })),
  );
}

/**
 * prompt_logprobs as vLLM takes it: not with a stream (its values travel only in the whole
 * response); max_tokens 0 only for a request that scores its prompt (`scores`).
 */
export function checkScoring(body: SamplingFields, scores: boolean): void {
  if (body.prompt_logprobs !== undefined && body.prompt_logprobs > 0 && body.stream === true) {
    throw invalidRequest('`prompt_logprobs` are not available when `stream=True`.', 'prompt_logprobs');
  }
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  if (maxTokens === 0 && !scores) {
    const param = body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
    throw invalidRequest(`'${param}' may be 0 only to score the prompt (with echo or prompt_logprobs); otherwise at least 1.`, param);
  }
}

/** Fields we accept in the schema but cannot honour: refuse them rather than ignore them. */
export function refuseUnsupported(fields: Record<string, unknown>): void {
  if (typeof fields.suffix === 'string' && fields.suffix !== '')
    throw invalidRequest("'suffix' is not supported by this server.", 'suffix');
  // OpenAI's deprecated function-calling fields: 'tools' and 'tool_choice' replace them.
  if (Array.isArray(fields.functions) && fields.functions.length > 0)
    throw invalidRequest("'functions' are not supported by this server; send them as 'tools'.", 'functions');
  const functionCall = fields.function_call;
  if (functionCall !== undefined && functionCall !== 'none' && functionCall !== 'auto')
    throw invalidRequest("'function_call' is not supported by this server; use 'tool_choice'.", 'function_call');
}
