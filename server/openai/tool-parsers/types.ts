// The common shape of the tool-call parsers: text deltas in, content deltas and OpenAI
// tool-call deltas out, in order; the complete calls at the end.

/** One piece of an OpenAI streaming `delta.tool_calls` entry. */
export interface ToolCallDelta {
  /** The call's position in this turn (0, 1, ...): OpenAI's `index`. */
  index: number;
  /** Only on a call's first delta, with `type` and `function.name`. */
  id?: string;
  type?: 'function';
  function: { name?: string; arguments?: string };
}

export type ToolParseEvent = { type: 'content'; text: string } | { type: 'tool_call'; delta: ToolCallDelta };

/** A complete call, as `message.tool_calls[]` carries it. */
export interface ParsedToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ToolParseResult {
  /** All content text of the turn (malformed calls included verbatim); "" when none. */
  content: string;
  toolCalls: ParsedToolCall[];
}

export interface ToolCallParser {
  /**
   * Takes the next text delta (whole code points, as the detokenizer emits them) and returns
   * what can be said now. Text that could still be the start of markup is held back; markup
   * never appears in content unless the call it opens turns out malformed.
   */
  feed(text: string): ToolParseEvent[];
  /** The stream ended: flushes held-back text (an unfinished call becomes content). */
  finish(): ToolParseEvent[];
  /** Everything parsed so far; after finish(), the turn's final content and calls. */
  result(): ToolParseResult;
}

export interface ToolParserOptions {
  /** The request's function names: a call to any other name is treated as malformed. */
  toolNames?: readonly string[];
  /** Makes call ids (default "call_" + 24 random letters and digits; Mistral: 9). */
  createCallId?: () => string;
}

export const TOOL_PARSER_NAMES = ['deepseek_v3', 'deepseek_v31', 'hermes', 'mistral'] as const;
export type ToolParserName = (typeof TOOL_PARSER_NAMES)[number];
