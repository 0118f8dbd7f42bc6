// Hermes / Qwen (Qwen2.5, Qwen3, QwQ): each call is a JSON object inside its own tags, as
// Qwen3's chat template writes them back into the prompt:
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
// Several calls follow one another, separated by a newline. <tool_call> and </tool_call> are
// single (non-special) tokens in Qwen's vocabulary.
import { JsonScanner } from './json-scanner.ts';
import { MarkupToolParser, type MarkupStep } from './markup-parser.ts';

export const HERMES_CALL_OPEN = '<tool_call>';
export const HERMES_CALL_CLOSE = '</tool_call>';

type Phase = 'open' | 'object' | 'close';

export class HermesToolParser extends MarkupToolParser {
  protected readonly triggers = [HERMES_CALL_OPEN];
  private phase: Phase = 'open';
  private scanner = new JsonScanner();

  protected startRegion(): void {
    this.phase = 'open';
    this.scanner = new JsonScanner();
  }

  protected parseMarkup(): MarkupStep {
    for (;;) {
      switch (this.phase) {
        case 'open': {
          const opened = this.literal(HERMES_CALL_OPEN);
          if (opened !== 'ok') return opened;
          this.phase = 'object';
          break;
        }
        case 'object': {
          if (this.scanner.text === '' && this.skipWhitespace() === 'wait') return 'wait';
          const scanned = this.scanJson(this.scanner);
          if (scanned === 'fail' || !this.streamObjectCall(this.scanner)) return 'fail';
          if (scanned === 'wait') return 'wait';
          this.closeCall();
          this.phase = 'close';
          break;
        }
        case 'close': {
          if (this.skipWhitespace() === 'wait') return 'wait';
          // A complete call whose closing tag never came (the turn ended) still counts.
          if (this.atEnd && this.pos === this.buf.length) return 'end';
          const closed = this.literal(HERMES_CALL_CLOSE);
          return closed === 'ok' ? 'end' : closed;
        }
      }
    }
  }
}
