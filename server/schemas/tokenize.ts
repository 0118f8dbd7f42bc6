// POST /tokenize and POST /detokenize (as vLLM has them).
import { Type, type Static } from '@sinclair/typebox';
import { ChatMessage, ChatTool } from './chat.ts';

/** Exactly one of `prompt` and `messages` (checked by the route). */
export const TokenizeRequest = Type.Object({
  model: Type.Optional(Type.String()),
  prompt: Type.Optional(Type.String()),
  add_special_tokens: Type.Optional(Type.Boolean({ description: 'With prompt: add BOS as the tokenizer does (default true).' })),
  messages: Type.Optional(Type.Array(ChatMessage, { minItems: 1 })),
  add_generation_prompt: Type.Optional(Type.Boolean({ description: 'With messages: open the assistant turn (default true).' })),
  tools: Type.Optional(Type.Array(ChatTool, { description: 'With messages: the tools the template renders.' })),
  chat_template_kwargs: Type.Optional(
    Type.Record(Type.String(), Type.Unknown(), { description: 'With messages: extra template variables.' }),
  ),
  return_token_strs: Type.Optional(Type.Boolean({ description: 'Also return each token as its vocabulary string.' })),
});
export type TokenizeRequest = Static<typeof TokenizeRequest>;

export const DetokenizeRequest = Type.Object({
  model: Type.Optional(Type.String()),
  tokens: Type.Array(Type.Integer({ minimum: 0 })),
});
export type DetokenizeRequest = Static<typeof DetokenizeRequest>;
