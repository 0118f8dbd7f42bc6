// DeepSeek-V3.1: the same block tokens as V3 but no type and no fence: the name, the
// separator, then the raw JSON arguments:
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>
import { DeepSeekBlockParser, DEEPSEEK_SEP } from './deepseek-v3.ts';
import type { MarkupStep } from './markup-parser.ts';

export class DeepSeekV31ToolParser extends DeepSeekBlockParser {
  protected readonly callStart = 'name';

  protected advanceCall(): 'ok' | MarkupStep {
    switch (this.phase) {
      case 'name': {
        const name = this.until([DEEPSEEK_SEP], 128);
        if (typeof name === 'string') return name;
        this.name = name.text.trim();
        return this.then('ok', 'args');
      }
      case 'args':
        return this.then(this.scanArguments(), 'end');
      default:
        return 'fail';
    }
  }
}
