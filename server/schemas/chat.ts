// POST /v1/chat/completions request body.
import { Type, type Static } from '@sinclair/typebox';
import { MAX_TOP_LOGPROBS, samplingFields, StringEnum, structuredOutputFields } from './sampling.ts';

export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;

const TextPart = Type.Object({ type: Type.Literal('text'), text: Type.String() });

/** An assistant's earlier tool call, as OpenAI returns it and clients send it back. */
export const ChatToolCall = Type.Object({
  id: Type.String(),
  type: Type.Literal('function'),
  function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String({ description: 'the arguments as a JSON string' }) }),
});

export const ChatMessage = Type.Object({
  role: StringEnum(CHAT_ROLES),
  // Absent only in an assistant turn that calls tools (checked when the prompt is rendered).
  content: Type.Optional(
    Type.Union([Type.String(), Type.Array(TextPart), Type.Null()], {
      description: 'a string, an array of text parts ({"type": "text", "text": ...}), or null',
    }),
  ),
  name: Type.Optional(Type.String()),
  tool_calls: Type.Optional(Type.Array(ChatToolCall)),
  tool_call_id: Type.Optional(Type.String()),
  reasoning_content: Type.Optional(Type.String()),
});
export type ChatMessage = Static<typeof ChatMessage>;

export const ChatTool = Type.Object({
  type: Type.Literal('function'),
  function: Type.Object({
    name: Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$', description: '1-64 letters, digits, _ . : -' }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Object({}, { description: 'a JSON schema object' })),
    strict: Type.Optional(Type.Boolean()),
  }),
});
export type ChatTool = Static<typeof ChatTool>;

export const ToolChoice = Type.Union(
  [
    StringEnum(['none', 'auto', 'required'] as const),
    Type.Object({ type: Type.Literal('function'), function: Type.Object({ name: Type.String() }) }),
  ],
  { description: '"none", "auto", "required" or {"type": "function", "function": {"name": ...}}' },
);
export type ToolChoice = Static<typeof ToolChoice>;

export const ChatCompletionRequest = Type.Object({
  ...samplingFields,
  ...structuredOutputFields,
  messages: Type.Array(ChatMessage, { minItems: 1 }),
  logprobs: Type.Optional(Type.Boolean()),
  top_logprobs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TOP_LOGPROBS })),
  add_generation_prompt: Type.Optional(Type.Boolean({ description: 'Open the assistant turn (default true).' })),
  tools: Type.Optional(Type.Array(ChatTool, { maxItems: 128 })),
  tool_choice: Type.Optional(ToolChoice),
  parallel_tool_calls: Type.Optional(Type.Boolean()),
  chat_template_kwargs: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'extra chat template variables' })),
});
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;
