// Mistral: calls follow the [TOOL_CALLS] control token, in one of two shapes.
// - Before tokenizer v11 (Mistral 7B v0.3, Mixtral 8x22B): one JSON list of objects, as the
//   chat templates of those models write it:
//     [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, {...}]
// - v11 and later (Mistral Small 3.2, Magistral, Devstral): each call is its own
//   [TOOL_CALLS]name[ARGS]{...} (v13 adds [CALL_ID]id between name and [ARGS]).
// [TOOL_CALLS] is a special token: the detokenizer must keep it in the text this parser reads.
// Mistral's templates require 9-character alphanumeric call ids, so those are the default.
import { JsonScanner } from './json-scanner.ts';
import { PhasedToolParser, randomAlphanumeric, type MarkupStep } from './markup-parser.ts';
import type { ToolParserOptions } from './types.ts';

export const MISTRAL_TOOL_CALLS = '[TOOL_CALLS]';
export const MISTRAL_ARGS = '[ARGS]';
export const MISTRAL_CALL_ID = '[CALL_ID]';

type Phase = 'open' | 'shape' | 'listItem' | 'listObject' | 'listNext' | 'name' | 'callId' | 'args';

export class MistralToolParser extends PhasedToolParser<Phase> {
  protected readonly triggers = [MISTRAL_TOOL_CALLS];
  protected phase: Phase = 'open';

  constructor(options: ToolParserOptions = {}) {
    super({ createCallId: () => randomAlphanumeric(9), ...options });
  }

  protected startRegion(): void {
    this.phase = 'open';
  }

  protected advance(): 'ok' | MarkupStep {
    switch (this.phase) {
      case 'open':
        return this.then(this.literal(MISTRAL_TOOL_CALLS), 'shape');
      case 'shape':
        if (this.skipWhitespace() === 'wait') return 'wait';
        if (this.buf[this.pos] === '[') {
          this.pos++;
          return this.then('ok', 'listItem');
        }
        return this.then('ok', 'name');
      case 'listItem':
        if (this.skipWhitespace() === 'wait') return 'wait';
        this.scanner = new JsonScanner();
        return this.then('ok', 'listObject');
      case 'listObject':
        return this.scanListObject();
      case 'listNext':
        return this.listNext();
      case 'name':
        return this.readName();
      case 'callId': {
        const id = this.until([MISTRAL_ARGS], 64);
        return typeof id === 'string' ? id : this.then('ok', 'args');
      }
      case 'args':
        return this.lastArguments();
    }
  }

  private scanListObject(): 'ok' | MarkupStep {
    if (this.scanner.text === '' && this.buf[this.pos] !== '{') return 'fail';
    const scanned = this.scanJson(this.scanner);
    if (scanned === 'fail' || !this.streamObjectCall(this.scanner)) return 'fail';
    if (scanned === 'wait') return 'wait';
    this.closeCall();
    return this.then('ok', 'listNext');
  }

  private listNext(): 'ok' | MarkupStep {
    if (this.skipWhitespace() === 'wait') return 'wait';
    if (this.atEnd && this.pos === this.buf.length) return 'end';
    const next = this.buf[this.pos];
    this.pos++;
    if (next === ',') return this.then('ok', 'listItem');
    return next === ']' ? 'end' : 'fail';
  }

  private readName(): 'ok' | MarkupStep {
    const name = this.until([MISTRAL_ARGS, MISTRAL_CALL_ID, '{'], 128);
    if (typeof name === 'string') return name;
    this.name = name.text.trim();
    if (name.delimiter === '{') this.pos--; // v11 without [ARGS]: the brace opens the arguments
    this.scanner = new JsonScanner();
    return this.then('ok', name.delimiter === MISTRAL_CALL_ID ? 'callId' : 'args');
  }

  /** A v11+ call's arguments end the region: each call has its own [TOOL_CALLS]. */
  private lastArguments(): 'ok' | MarkupStep {
    const scanned = this.scanArguments();
    if (scanned !== 'ok') return scanned;
    this.closeCall();
    return 'end';
  }
}
