// Splits a model's streamed text into reasoning_content and content for models that think
// inside <think>...</think> (`--reasoning-parser`). Two openings exist:
// - the model writes <think> itself (Qwen3 with thinking on): output starts with the tag;
// - the chat template already put <think> at the end of the prompt (DeepSeek-R1 style and
//   newer Qwen3 thinking templates): output starts inside the reasoning, and if </think>
//   never comes (max_tokens) all of it was reasoning.
// Whitespace right inside the tags and right after </think> is layout and dropped, as the
// templates drop it when they render reasoning_content back into a prompt. Text is held back
// while it could still be the start of a tag.

export type ReasoningEvent = { type: 'reasoning'; text: string } | { type: 'content'; text: string };

export interface ReasoningResult {
  /** null when the output had no reasoning at all. */
  reasoning: string | null;
  content: string;
}

export interface ReasoningParserOptions {
  /** The prompt ends inside an open reasoning block (see promptOpensReasoning). */
  startsInReasoning: boolean;
  startTag?: string;
  endTag?: string;
}

type Phase = 'start' | 'reasoning' | 'afterEnd' | 'content';

/** Whether the rendered prompt leaves a reasoning block open (its last start tag is unclosed). */
export function promptOpensReasoning(prompt: string, startTag = '<think>', endTag = '</think>'): boolean {
  const start = prompt.lastIndexOf(startTag);
  return start >= 0 && prompt.indexOf(endTag, start) < 0;
}

/**
 * The parser a request gets: none when the client turned thinking off through the template
 * (Qwen3's enable_thinking, DeepSeek-V3.1's thinking), so everything is content.
 */
export function reasoningParserFor(prompt: string, chatTemplateKwargs: Readonly<Record<string, unknown>>): ReasoningParser | null {
  const opening = reasoningOpening(prompt, chatTemplateKwargs);
  return opening === null ? null : new ReasoningParser(opening);
}

/** How a request's output opens: inside its reasoning or before it; null when thinking is off. */
export function reasoningOpening(prompt: string, chatTemplateKwargs: Readonly<Record<string, unknown>>): ReasoningParserOptions | null {
  if (chatTemplateKwargs.enable_thinking === false || chatTemplateKwargs.thinking === false) return null;
  return { startsInReasoning: promptOpensReasoning(prompt) };
}

function heldTagPrefix(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--) if (text.endsWith(tag.slice(0, n))) return n;
  return 0;
}

export class ReasoningParser {
  private phase: Phase;
  private buf = '';
  private events: ReasoningEvent[] = [];
  private reasoning: string | null = null;
  private content = '';
  private readonly startTag: string;
  private readonly endTag: string;

  constructor(options: ReasoningParserOptions) {
    this.startTag = options.startTag ?? '<think>';
    this.endTag = options.endTag ?? '</think>';
    this.phase = options.startsInReasoning ? 'reasoning' : 'start';
    if (options.startsInReasoning) this.reasoning = '';
  }

  feed(text: string): ReasoningEvent[] {
    this.buf += text;
    this.run(false);
    return this.drain();
  }

  finish(): ReasoningEvent[] {
    this.run(true);
    return this.drain();
  }

  result(): ReasoningResult {
    return { reasoning: this.reasoning, content: this.content };
  }

  private run(atEnd: boolean): void {
    for (let progressed = true; progressed;) {
      progressed = this.step(atEnd);
    }
  }

  /** One move of the phase machine; false when it needs more text. */
  private step(atEnd: boolean): boolean {
    switch (this.phase) {
      case 'start': {
        const trimmed = this.buf.trimStart();
        if (trimmed.startsWith(this.startTag)) {
          this.buf = trimmed.slice(this.startTag.length);
          this.reasoning = '';
          this.phase = 'reasoning';
          return true;
        }
        if (!atEnd && this.startTag.startsWith(trimmed)) return false; // "", "<", "<thi"...
        this.phase = 'content';
        return true;
      }
      case 'reasoning':
        return this.reasoningStep(atEnd);
      case 'afterEnd': {
        this.buf = this.buf.trimStart();
        if (this.buf === '' && !atEnd) return false;
        this.phase = 'content';
        return true;
      }
      case 'content':
        this.emit('content', this.buf);
        this.buf = '';
        return false;
    }
  }

  private reasoningStep(atEnd: boolean): boolean {
    if (this.reasoning === '') this.buf = this.buf.trimStart();
    const end = this.buf.indexOf(this.endTag);
    if (end >= 0) {
      this.emit('reasoning', this.buf.slice(0, end).trimEnd());
      this.buf = this.buf.slice(end + this.endTag.length);
      this.phase = 'afterEnd';
      return true;
    }
    // Hold a tail that could begin the end tag, and trailing whitespace that may precede it.
    const held = atEnd ? 0 : heldTagPrefix(this.buf, this.endTag);
    const ready = this.buf.slice(0, this.buf.length - held);
    const sendable = atEnd ? ready.trimEnd() : ready.trimEnd().length === 0 ? '' : ready.slice(0, ready.trimEnd().length);
    this.emit('reasoning', sendable);
    this.buf = atEnd ? '' : this.buf.slice(sendable.length);
    return false;
  }

  private emit(type: ReasoningEvent['type'], text: string): void {
    if (text === '') return;
    if (type === 'reasoning') this.reasoning = (this.reasoning ?? '') + text;
    else this.content += text;
    const last = this.events[this.events.length - 1];
    if (last?.type === type) last.text += text;
    else this.events.push({ type, text });
  }

  private drain(): ReasoningEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }
}
