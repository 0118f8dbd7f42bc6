// DeepSeek-V3.1: the same block tokens as V3 but no type and no fence: the name, the
// separator, then the raw JSON arguments:
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>
import { DEEPSEEK_CALL_BEGIN, DEEPSEEK_CALL_END, DEEPSEEK_CALLS_BEGIN, DEEPSEEK_CALLS_END, DEEPSEEK_SEP } from './deepseek-v3.ts';
import { JsonScanner } from './json-scanner.ts';
import { MarkupToolParser, type MarkupStep } from './markup-parser.ts';

type Phase = 'begin' | 'next' | 'name' | 'args' | 'end';

export class DeepSeekV31ToolParser extends MarkupToolParser {
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
      case 'name': {
        const name = this.until([DEEPSEEK_SEP], 128);
        if (typeof name === 'string') return name;
        this.name = name.text.trim();
        return this.then('ok', 'args');
      }
      case 'args':
        return this.scanArguments();
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

  private nextCall(): 'ok' | MarkupStep {
    if (this.skipWhitespace() === 'wait') return 'wait';
    if (this.atEnd && this.pos === this.buf.length) return 'end';
    const close = this.peekLiteral(DEEPSEEK_CALLS_END);
    if (close === 'ok') return this.literal(DEEPSEEK_CALLS_END) === 'ok' ? 'end' : 'fail';
    const begin = this.literal(DEEPSEEK_CALL_BEGIN);
    if (begin === 'fail' && close === 'wait') return 'wait';
    if (begin !== 'ok') return begin;
    this.scanner = new JsonScanner();
    return this.then('ok', 'name');
  }

  private scanArguments(): 'ok' | MarkupStep {
    if (!this.callIsOpen) {
      if (this.skipWhitespace() === 'wait') return 'wait';
      if (this.buf[this.pos] !== '{' || !this.openCall(this.name)) return 'fail';
    }
    const scanned = this.scanJson(this.scanner);
    if (scanned === 'fail' || !this.streamRawArguments(this.scanner)) return 'fail';
    return scanned === 'wait' ? 'wait' : this.then('ok', 'end');
  }

  private then(step: 'ok' | 'wait' | 'fail', next: Phase): 'ok' | MarkupStep {
    if (step === 'ok') this.phase = next;
    return step;
  }
}
