// Conversations for distillation: one JSON line each, {"id"?, "messages": [...]} plus, for
// --generate, any chat completion sampling fields; rendered through the checkpoint's chat
// template, and the positions of the response tokens (the assistant turns) found.
//
// How the assistant turns are found: for each assistant message i, the template is rendered
// twice more: messages[0..i) with the generation prompt opened (what the model sees before it
// answers) and messages[0..i] (the answer and whatever the template closes the turn with,
// such as an end-of-turn token). The tokens between the two renderings are that turn's
// response tokens, provided both renderings tokenise to prefixes of the whole conversation's
// tokens; when a template rewrites earlier turns (some drop a reasoning block from past
// answers) or a token straddles the boundary, the conversation is refused rather than guessed.
import { isPlainObject } from '../../models/checkpoint/safetensors-header.ts';
import { invalidRequest } from '../openai/errors.ts';
import { checkPromptLength, encodeText, renderChat } from '../openai/prompts.ts';
import { ChatCompletionRequest, type ChatMessage } from '../schemas/chat.ts';
import { parseWith } from '../schemas/validation.ts';
import type { ServedModel } from '../served-model.ts';

export interface ConversationLine {
  id: string;
  messages: ChatMessage[];
  /** Everything else on the line: chat completion fields for --generate. */
  fields: Record<string, unknown>;
}

/** One input line; throws a message for an error line. `lineNumber` names lines without an id. */
export function parseConversationLine(text: string, lineNumber: number): ConversationLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`the line is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isPlainObject(value)) throw new Error('the line is not a JSON object');
  const { id, messages, ...fields } = value;
  if (id !== undefined && (typeof id !== 'string' || id === '')) throw new Error("'id' must be a non-empty string");
  const parsed = parseWith(ChatCompletionRequest, { messages }, 'conversation');
  return { id: id ?? `line-${lineNumber}`, messages: parsed.messages, fields };
}

/** A span of token positions [start, end). */
export interface Span {
  start: number;
  end: number;
}

export interface ConversationTokens {
  ids: number[];
  /** The assistant turns' tokens, in order. */
  spans: Span[];
}

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > ids.length) return false;
  for (let i = 0; i < prefix.length; i++) if (ids[i] !== prefix[i]) return false;
  return true;
}

export function conversationTokens(model: ServedModel, messages: readonly ChatMessage[]): ConversationTokens {
  const tokens = (text: string): number[] => encodeText(model, text, 'messages', false);
  const full = renderChat(model, messages, false);
  const ids = tokens(full);
  checkPromptLength(model, ids, 'messages');
  const spans: Span[] = [];
  messages.forEach((message, i) => {
    if (message.role !== 'assistant') return;
    const before = renderChat(model, messages.slice(0, i), true);
    const through = renderChat(model, messages.slice(0, i + 1), false);
    if (!through.startsWith(before) || !full.startsWith(through)) {
      throw invalidRequest(`assistant turn ${i}: the chat template renders earlier turns differently once later ones follow`, 'messages');
    }
    const start = tokens(before);
    const end = tokens(through);
    if (!startsWith(end, start) || !startsWith(ids, end)) {
      throw invalidRequest(`assistant turn ${i}: a token spans the boundary of the turn, so its tokens cannot be told apart`, 'messages');
    }
    // Position 0 has nothing before it to be predicted from.
    if (end.length > Math.max(start.length, 1)) spans.push({ start: Math.max(start.length, 1), end: end.length });
  });
  if (spans.length === 0) throw invalidRequest('the conversation has no assistant turn to score', 'messages');
  return { ids, spans };
}

/** The response positions of the spans, ascending. */
export function responsePositions(spans: readonly Span[]): Int32Array {
  const positions: number[] = [];
  for (const { start, end } of spans) for (let p = start; p < end; p++) positions.push(p);
  return Int32Array.from(positions);
}
