// POST /v1/chat/completions request body.
import { Type, type Static } from '@sinclair/typebox';
import { MAX_TOP_LOGPROBS, samplingFields, StringEnum } from './sampling.ts';

export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;

const TextPart = Type.Object({ type: Type.Literal('text'), text: Type.String() });

export const ChatMessage = Type.Object({
  role: StringEnum(CHAT_ROLES),
  content: Type.Union([Type.String(), Type.Array(TextPart), Type.Null()], {
    description: 'a string, an array of text parts ({"type": "text", "text": ...}), or null',
  }),
  name: Type.Optional(Type.String()),
});
export type ChatMessage = Static<typeof ChatMessage>;

export const ChatCompletionRequest = Type.Object({
  ...samplingFields,
  messages: Type.Array(ChatMessage, { minItems: 1 }),
  logprobs: Type.Optional(Type.Boolean()),
  top_logprobs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TOP_LOGPROBS })),
  add_generation_prompt: Type.Optional(Type.Boolean({ description: 'Open the assistant turn (default true).' })),
  response_format: Type.Optional(Type.Object({ type: Type.String() })),
  tools: Type.Optional(Type.Array(Type.Unknown())),
});
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;
