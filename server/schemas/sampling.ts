// Request fields shared by /v1/chat/completions and /v1/completions (and their WebSocket
// forms): generation length, sampling, penalties, stop conditions, streaming. Ranges follow
// OpenAI's API; top_k, min_p, repetition_penalty, stop_token_ids and ignore_eos are the
// extensions vLLM users know.
import { Type, type TSchema } from '@sinclair/typebox';

/** Most choices (prompts x n) one request may ask for. */
export const MAX_CHOICES_PER_REQUEST = 64;
export const MAX_STOP_STRINGS = 4;
export const MAX_TOP_LOGPROBS = 20;

/** A string enum as a plain JSON Schema enum, so a wrong value gets one clear error. */
export function StringEnum<T extends string>(values: readonly T[], description?: string): TSchema & { static: T } {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], description });
}

export const samplingFields = {
  model: Type.Optional(Type.String({ description: 'The served model id (see GET /v1/models); optional.' })),
  max_tokens: Type.Optional(
    Type.Integer({
      minimum: 0,
      description: 'Most tokens to generate; default: the rest of the context. 0 only to score the prompt (echo, prompt_logprobs).',
    }),
  ),
  max_completion_tokens: Type.Optional(Type.Integer({ minimum: 0, description: 'Alias of max_tokens; wins when both are given.' })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2, description: '0 = greedy; default 1.' })),
  top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top_k: Type.Optional(Type.Integer({ minimum: -1, description: '-1 or 0 = off.' })),
  min_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  seed: Type.Optional(Type.Integer({ minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER })),
  stop: Type.Optional(
    Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { maxItems: MAX_STOP_STRINGS })], {
      description: `a non-empty string or an array of up to ${MAX_STOP_STRINGS} non-empty strings`,
    }),
  ),
  stop_token_ids: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 64 })),
  ignore_eos: Type.Optional(Type.Boolean()),
  prompt_logprobs: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: MAX_TOP_LOGPROBS,
      description: "Logprob of every prompt token and this many alternatives, teacher-forced (vLLM's extension; not with stream).",
    }),
  ),
  routed_experts: Type.Optional(Type.Boolean({ description: 'Return the experts each token was routed to, per MoE layer (extension).' })),
  n: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CHOICES_PER_REQUEST })),
  stream: Type.Optional(Type.Boolean()),
  stream_options: Type.Optional(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  presence_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  repetition_penalty: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10, description: '1 = off.' })),
  logit_bias: Type.Optional(
    Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }), {
      description: 'token id (as a string) -> bias in [-100, 100]',
    }),
  ),
  user: Type.Optional(Type.String()),
};

/**
 * Output constraints (server/openai/structured-output.ts checks their insides and names the
 * field at fault): OpenAI's response_format, vLLM's structured_outputs and its older guided_*
 * fields.
 */
export const structuredOutputFields = {
  response_format: Type.Optional(
    Type.Object({ type: Type.String() }, { description: '{"type": "text" | "json_object" | "json_schema", ...}' }),
  ),
  structured_outputs: Type.Optional(
    Type.Object({}, { description: '{"json" | "regex" | "grammar" | "choice" | "json_object": ...} (vLLM)' }),
  ),
  guided_json: Type.Optional(Type.Union([Type.Object({}), Type.String()])),
  guided_regex: Type.Optional(Type.String()),
  guided_grammar: Type.Optional(Type.String()),
  guided_choice: Type.Optional(Type.Array(Type.String())),
};
