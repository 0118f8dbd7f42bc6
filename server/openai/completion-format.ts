// Text completion bodies and chunks, shaped as OpenAI's (object "text_completion"; logprobs
// as columns: tokens, token_logprobs, top_logprobs, text_offset).
import { ChunkFormat, openaiFinishReason, type FormatOptions } from './format.ts';
import type { ChoiceState, ChoiceUpdate } from './generation.ts';
import { completionLogprobs, nextTextOffset, type CompletionLogprobs } from './logprobs.ts';

export class CompletionFormat extends ChunkFormat {
  /** Per choice: text_offset of its next streamed token. */
  private readonly nextOffsets = new Map<number, number>();

  constructor(options: FormatOptions) {
    super(options, 'text_completion', 'text_completion');
  }

  protected textChoice(update: ChoiceUpdate): object {
    return { index: update.index, text: update.text, logprobs: this.updateLogprobs(update), finish_reason: null };
  }

  protected finishChoice(index: number, finishReason: 'stop' | 'length'): object {
    return { index, text: '', logprobs: null, finish_reason: finishReason };
  }

  protected responseChoice(choice: ChoiceState): object {
    return {
      index: choice.index,
      text: choice.text,
      logprobs: this.withLogprobs ? completionLogprobs(choice.logprobs, this.texts, 0) : null,
      finish_reason: openaiFinishReason(choice.finishReason),
    };
  }

  /** Streamed logprobs continue each choice's text_offset where its last update ended. */
  updateLogprobs(update: ChoiceUpdate): CompletionLogprobs | null {
    if (!this.withLogprobs) return null;
    const start = this.nextOffsets.get(update.index) ?? 0;
    const logprobs = completionLogprobs(update.logprobs, this.texts, start);
    this.nextOffsets.set(update.index, nextTextOffset(logprobs, start));
    return logprobs;
  }
}
