// One chat choice's text -> what OpenAI's clients expect: reasoning_content, content and
// tool_calls. The reasoning parser reads the text first; the content it lets through goes
// to the tool-call parser, whose markup never reaches content (a malformed call does, as
// text). Streaming gets the deltas in order; the whole message comes from the same parsers.
import { ReasoningParser, type ReasoningEvent, type ReasoningParserOptions } from './reasoning-parser.ts';
import { createToolParser } from './tool-parsers/registry.ts';
import type { ParsedToolCall, ToolCallDelta, ToolCallParser, ToolParserName } from './tool-parsers/types.ts';

export interface ChatOutputOptions {
  /**
   * Tool calls are parsed with this parser; calls to other functions than toolNames are
   * content. firstCallOnly (parallel_tool_calls false where no grammar enforces it, i.e.
   * tool_choice "auto"): calls after the first are dropped, so the client sees at most one.
   */
  tools: { parser: ToolParserName; toolNames: readonly string[]; firstCallOnly?: boolean } | null;
  /** The reasoning parser's opening; null: no reasoning is split off. */
  reasoning: ReasoningParserOptions | null;
}

/** One streaming delta, as `choices[].delta` carries it. */
export interface ChatDelta {
  reasoning_content?: string;
  content?: string;
  tool_calls?: ToolCallDelta[];
}

export interface ChatMessageParts {
  /** null when the turn holds only tool calls (as OpenAI answers). */
  content: string | null;
  /** null when the model wrote no reasoning (or none is split off). */
  reasoningContent: string | null;
  toolCalls: ParsedToolCall[];
}

export class ChoiceOutput {
  private readonly reasoning: ReasoningParser | null;
  private readonly tools: ToolCallParser | null;
  private readonly maxCalls: number;
  private content = '';
  private finished = false;

  constructor(options: ChatOutputOptions) {
    this.reasoning = options.reasoning === null ? null : new ReasoningParser(options.reasoning);
    this.tools = options.tools === null ? null : createToolParser(options.tools.parser, { toolNames: options.tools.toolNames });
    this.maxCalls = options.tools?.firstCallOnly === true ? 1 : Infinity;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  feed(text: string): ChatDelta[] {
    if (text === '') return [];
    return this.route(this.reasoning === null ? [{ type: 'content', text }] : this.reasoning.feed(text), false);
  }

  /** The choice ended: held-back text comes out (an unfinished call as content). */
  finish(): ChatDelta[] {
    if (this.finished) return [];
    this.finished = true;
    return this.route(this.reasoning?.finish() ?? [], true);
  }

  /** The whole message; complete after finish(). */
  result(): ChatMessageParts {
    const toolCalls = (this.tools?.result().toolCalls ?? []).slice(0, this.maxCalls);
    const content = this.tools?.result().content ?? this.content;
    return {
      content: content === '' && toolCalls.length > 0 ? null : content,
      reasoningContent: this.reasoning?.result().reasoning ?? null,
      toolCalls,
    };
  }

  private route(events: ReasoningEvent[], atEnd: boolean): ChatDelta[] {
    const deltas: ChatDelta[] = [];
    for (const event of events) {
      if (event.type === 'reasoning') push(deltas, { reasoning_content: event.text });
      else this.content += event.text;
      if (event.type === 'content') this.toContent(event.text, deltas);
    }
    if (atEnd && this.tools !== null) this.toolEvents(this.tools.finish(), deltas);
    return deltas;
  }

  private toContent(text: string, deltas: ChatDelta[]): void {
    if (this.tools === null) push(deltas, { content: text });
    else this.toolEvents(this.tools.feed(text), deltas);
  }

  private toolEvents(events: ReturnType<ToolCallParser['feed']>, deltas: ChatDelta[]): void {
    for (const event of events) {
      if (event.type === 'content') push(deltas, { content: event.text });
      else if (event.delta.index < this.maxCalls) push(deltas, { tool_calls: [event.delta] });
    }
  }
}

/** Appends a delta, joining it to the last one when both carry text of the same kind. */
function push(deltas: ChatDelta[], delta: ChatDelta): void {
  const last = deltas[deltas.length - 1];
  if (last !== undefined && delta.content !== undefined && last.content !== undefined && last.tool_calls === undefined) {
    last.content += delta.content;
  } else if (last !== undefined && delta.reasoning_content !== undefined && last.reasoning_content !== undefined) {
    last.reasoning_content += delta.reasoning_content;
  } else if (delta.content !== '' && delta.reasoning_content !== '') {
    deltas.push({ ...delta });
  }
}
