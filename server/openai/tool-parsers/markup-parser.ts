// The streaming machinery every markup format shares: content until a trigger (holding back
// a tail that could be the start of one), then the format's own resumable parse of the
// markup, with calls opened, fed arguments and closed through one bookkeeping path. A format
// subclass only says what its markup looks like (parseMarkup).
import { randomBytes } from 'node:crypto';
import { JsonScanner } from './json-scanner.ts';
import type { ParsedToolCall, ToolCallParser, ToolParseEvent, ToolParseResult, ToolParserOptions } from './types.ts';

/** The subclass's answer: need more text, the markup region ended, or it is malformed. */
export type MarkupStep = 'wait' | 'end' | 'fail';
type MatchStep = 'ok' | 'wait' | 'fail';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** n random letters and digits. */
export function randomAlphanumeric(n: number): string {
  return Array.from(randomBytes(n), (byte) => ALPHANUMERIC[byte % ALPHANUMERIC.length]).join('');
}

export const defaultCallId = (): string => `call_${randomAlphanumeric(24)}`;

/** Function names as OpenAI allows them (letters, digits, _ - . :), 1-64 characters. */
const FUNCTION_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

interface OpenCall {
  index: number;
  id: string;
  name: string;
  args: string;
}

export abstract class MarkupToolParser implements ToolCallParser {
  /** Markup strings that open a region; text is held back while its tail could start one. */
  protected abstract readonly triggers: readonly string[];
  /** Parses markup from `pos`, consuming what it recognises. */
  protected abstract parseMarkup(): MarkupStep;
  /** Called when a region starts: reset the format's own phase. */
  protected abstract startRegion(): void;

  protected buf = '';
  protected pos = 0;
  /** The stream has ended: a literal cut short is now malformed, not pending. */
  protected atEnd = false;
  private unitStart = 0;
  private inMarkup = false;
  /** Just after a region: whitespace is dropped if only markup or nothing follows it. */
  private afterRegion = false;
  private events: ToolParseEvent[] = [];
  private content = '';
  private readonly calls: ParsedToolCall[] = [];
  private open: OpenCall | null = null;
  private numCalls = 0;
  private readonly toolNames: ReadonlySet<string> | null;
  private readonly createCallId: () => string;

  constructor(options: ToolParserOptions = {}) {
    this.toolNames = options.toolNames === undefined ? null : new Set(options.toolNames);
    this.createCallId = options.createCallId ?? defaultCallId;
  }

  feed(text: string): ToolParseEvent[] {
    this.buf += text;
    this.run();
    return this.drain();
  }

  finish(): ToolParseEvent[] {
    this.atEnd = true;
    this.run();
    if (this.inMarkup) this.malformed(this.buf.length);
    const rest = this.buf.slice(this.pos);
    if (!(this.afterRegion && rest.trim() === '')) this.emitContent(rest);
    this.buf = '';
    this.pos = 0;
    return this.drain();
  }

  result(): ToolParseResult {
    return { content: this.content, toolCalls: this.calls.map((c) => ({ ...c, function: { ...c.function } })) };
  }

  // ---- for the format subclasses ----

  /** Marks where the current call's text starts: what becomes content if it breaks. */
  protected startUnit(): void {
    this.unitStart = this.pos;
  }

  protected literal(text: string): MatchStep {
    const rest = this.buf.length - this.pos;
    if (rest >= text.length) {
      if (!this.buf.startsWith(text, this.pos)) return 'fail';
      this.pos += text.length;
      return 'ok';
    }
    return text.startsWith(this.buf.slice(this.pos)) && !this.atEnd ? 'wait' : 'fail';
  }

  /** Whether the text at pos is (or, while waiting, could still be) the literal. */
  protected peekLiteral(text: string): MatchStep {
    const rest = this.buf.slice(this.pos, this.pos + text.length);
    if (rest === text) return 'ok';
    return text.startsWith(rest) && rest.length < text.length && !this.atEnd ? 'wait' : 'fail';
  }

  /** Skips whitespace; 'wait' when the buffer ended inside it. */
  protected skipWhitespace(): 'ok' | 'wait' {
    while (this.pos < this.buf.length && /\s/.test(this.buf[this.pos])) this.pos++;
    return this.pos < this.buf.length || this.atEnd ? 'ok' : 'wait';
  }

  /** Text up to the first of the delimiters (consumed too), at most maxChars long. */
  protected until(delimiters: readonly string[], maxChars: number): { text: string; delimiter: string } | 'wait' | 'fail' {
    let best: { at: number; delimiter: string } | null = null;
    for (const delimiter of delimiters) {
      const at = this.buf.indexOf(delimiter, this.pos);
      if (at >= 0 && (best === null || at < best.at)) best = { at, delimiter };
    }
    if (best === null) return this.buf.length - this.pos > maxChars || this.atEnd ? 'fail' : 'wait';
    if (best.at - this.pos > maxChars) return 'fail';
    const text = this.buf.slice(this.pos, best.at);
    this.pos = best.at + best.delimiter.length;
    return { text, delimiter: best.delimiter };
  }

  /** Feeds the scanner from pos; 'ok' once its value is complete. */
  protected scanJson(scanner: JsonScanner): MatchStep {
    this.pos += scanner.push(this.buf.slice(this.pos));
    if (scanner.state === 'error') return 'fail';
    if (scanner.state === 'done') return 'ok';
    return this.atEnd ? 'fail' : 'wait';
  }

  protected get callIsOpen(): boolean {
    return this.open !== null;
  }

  protected get openArguments(): string {
    return this.open?.args ?? '';
  }

  /** Sends the call's id and name; false when the name is not one the request offered. */
  protected openCall(name: string): boolean {
    if (!FUNCTION_NAME.test(name) || (this.toolNames !== null && !this.toolNames.has(name))) return false;
    this.open = { index: this.numCalls++, id: this.createCallId(), name, args: '' };
    const { index, id } = this.open;
    this.events.push({ type: 'tool_call', delta: { index, id, type: 'function', function: { name, arguments: '' } } });
    return true;
  }

  protected appendArguments(text: string): void {
    if (this.open === null || text === '') return;
    this.open.args += text;
    this.events.push({ type: 'tool_call', delta: { index: this.open.index, function: { arguments: text } } });
  }

  /** The open call is complete; whatever follows is a new unit. */
  protected closeCall(): void {
    if (this.open === null) return;
    const { id, name, args } = this.open;
    this.calls.push({ id, type: 'function', function: { name, arguments: args } });
    this.open = null;
    this.unitStart = this.pos;
  }

  /** Forwards the part of a raw JSON arguments value (the whole scanned text) not yet sent. */
  protected streamRawArguments(scanner: JsonScanner): boolean {
    if (scanner.text !== '' && scanner.text[0] !== '{') return false;
    this.appendArguments(scanner.text.slice(this.openArguments.length));
    return true;
  }

  /**
   * For a call written as one object {"name": ..., "arguments": {...}} (Hermes, Mistral's
   * list): opens the call once the name is complete and the arguments have begun (either
   * order), then forwards the arguments' text as it validates. An "arguments" given as a
   * JSON string holding an object is sent once complete. False when malformed.
   */
  protected streamObjectCall(scanner: JsonScanner): boolean {
    const nameMember = scanner.member('name');
    const argsMember = scanner.member('arguments') ?? scanner.member('parameters');
    const done = scanner.state === 'done';
    if (!this.callIsOpen) {
      if (nameMember?.valueEnd == null || (argsMember === undefined && !done)) return true;
      const name: unknown = JSON.parse(scanner.text.slice(nameMember.valueStart, nameMember.valueEnd));
      if (typeof name !== 'string' || !this.openCall(name)) return false;
    }
    if (argsMember === undefined) {
      if (done) this.appendArguments('{}');
      return true;
    }
    const { valueStart, valueEnd } = argsMember;
    const first = scanner.text[valueStart];
    if (first === '{') {
      const upTo = valueEnd ?? scanner.text.length;
      this.appendArguments(scanner.text.slice(valueStart + this.openArguments.length, upTo));
      return true;
    }
    if (first !== '"') return false;
    if (valueEnd === null || this.openArguments !== '') return true;
    const decoded: unknown = JSON.parse(scanner.text.slice(valueStart, valueEnd));
    if (typeof decoded !== 'string' || !isJsonObjectText(decoded)) return false;
    this.appendArguments(decoded);
    return true;
  }

  // ---- the loop ----

  private run(): void {
    for (;;) {
      if (!this.inMarkup && !this.scanContent()) break;
      const step = this.parseMarkup();
      if (step === 'wait') break;
      if (step === 'fail') this.malformed(this.pos);
      else this.endRegion();
    }
    this.compact();
  }

  /** Emits content up to the next trigger and enters markup there; false when none is found. */
  private scanContent(): boolean {
    const found = this.nextTrigger();
    const end = found ?? this.buf.length - this.heldTail();
    const text = this.buf.slice(this.pos, end);
    if (this.afterRegion && text.trim() === '') {
      // Whitespace after a region is layout: dropped before the next region or the end,
      // held (pos stays) until something else shows what it is.
      if (found === null) return false;
    } else {
      this.afterRegion = false;
      this.emitContent(text);
    }
    this.pos = found ?? end;
    if (found === null) return false;
    this.inMarkup = true;
    this.unitStart = this.pos;
    this.startRegion();
    return true;
  }

  private nextTrigger(): number | null {
    let best: number | null = null;
    for (const trigger of this.triggers) {
      const at = this.buf.indexOf(trigger, this.pos);
      if (at >= 0 && (best === null || at < best)) best = at;
    }
    return best;
  }

  /** Length of the longest buffer tail that is a proper prefix of a trigger. */
  private heldTail(): number {
    if (this.atEnd) return 0;
    let held = 0;
    for (const trigger of this.triggers) {
      for (let n = Math.min(trigger.length - 1, this.buf.length - this.pos); n > held; n--) {
        if (this.buf.endsWith(trigger.slice(0, n))) {
          held = n;
          break;
        }
      }
    }
    return held;
  }

  private endRegion(): void {
    this.inMarkup = false;
    this.afterRegion = true;
  }

  /** The unit being parsed is not well-formed: its text so far becomes content. */
  private malformed(failAt: number): void {
    const end = Math.max(failAt, this.unitStart + 1);
    this.emitContent(this.buf.slice(this.unitStart, Math.min(end, this.buf.length)));
    this.pos = Math.min(end, this.buf.length);
    this.open = null;
    this.inMarkup = false;
    this.afterRegion = false;
  }

  private emitContent(text: string): void {
    if (text === '') return;
    this.content += text;
    const last = this.events[this.events.length - 1];
    if (last?.type === 'content') last.text += text;
    else this.events.push({ type: 'content', text });
  }

  private drain(): ToolParseEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  /** Drops text no longer needed: everything before the current unit (or before pos). */
  private compact(): void {
    const keepFrom = this.inMarkup ? Math.min(this.unitStart, this.pos) : this.pos;
    if (keepFrom === 0) return;
    this.buf = this.buf.slice(keepFrom);
    this.pos -= keepFrom;
    this.unitStart = Math.max(0, this.unitStart - keepFrom);
  }
}

function isJsonObjectText(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/** A format parsed as a state machine over named phases: `advance` takes one step at a time. */
export abstract class PhasedToolParser<P extends string> extends MarkupToolParser {
  protected abstract phase: P;
  /** The function name read for the call whose arguments come next. */
  protected name = '';
  protected scanner = new JsonScanner();

  /** One step of the format from `phase`: 'ok' to go on, or what parseMarkup answers. */
  protected abstract advance(): 'ok' | MarkupStep;

  protected parseMarkup(): MarkupStep {
    for (;;) {
      const step = this.advance();
      if (step !== 'ok') return step;
    }
  }

  /** Moves to `next` when `step` succeeded. */
  protected then(step: MatchStep, next: P): 'ok' | MarkupStep {
    if (step === 'ok') this.phase = next;
    return step;
  }

  /** The arguments object of a call named `name`, streamed as it arrives: 'ok' once it is whole. */
  protected scanArguments(): MatchStep {
    if (!this.callIsOpen) {
      if (this.skipWhitespace() === 'wait') return 'wait';
      if (this.buf[this.pos] !== '{' || !this.openCall(this.name)) return 'fail';
    }
    const scanned = this.scanJson(this.scanner);
    if (scanned === 'fail' || !this.streamRawArguments(this.scanner)) return 'fail';
    return scanned;
  }
}
