// POST /v1/completions request body.
import { Type, type Static } from '@sinclair/typebox';
import { MAX_CHOICES_PER_REQUEST, MAX_TOP_LOGPROBS, samplingFields, structuredOutputFields } from './sampling.ts';

const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 });

export const Prompt = Type.Union(
  [
    Type.String(),
    Type.Array(Type.String(), { minItems: 1, maxItems: MAX_CHOICES_PER_REQUEST }),
    TokenIds,
    Type.Array(TokenIds, { minItems: 1, maxItems: MAX_CHOICES_PER_REQUEST }),
  ],
  { description: 'a string, an array of strings, an array of token ids, or an array of token-id arrays (arrays not empty)' },
);

export const CompletionRequest = Type.Object({
  ...samplingFields,
  ...structuredOutputFields,
  prompt: Prompt,
  logprobs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TOP_LOGPROBS })),
  echo: Type.Optional(Type.Boolean()),
  suffix: Type.Optional(Type.String()),
});
export type CompletionRequest = Static<typeof CompletionRequest>;
