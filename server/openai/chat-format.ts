// Chat completion bodies and chunks, shaped as OpenAI's (object "chat.completion" and
// "chat.completion.chunk"; logprobs under choices[].logprobs.content).
import type { TokenLogprob } from '../engine/api.ts';
import { ChunkFormat, openaiFinishReason, type FormatOptions } from './format.ts';
import type { ChoiceState, ChoiceUpdate, Generation } from './generation.ts';
import { chatLogprob, type ChatLogprob } from './logprobs.ts';
import { vllmPromptLogprobs } from './prompt-logprobs.ts';

export class ChatFormat extends ChunkFormat {
  constructor(options: FormatOptions) {
    super(options, 'chat.completion', 'chat.completion.chunk');
  }

  private logprobs(entries: readonly TokenLogprob[]): { content: ChatLogprob[]; refusal: null } | null {
    return this.withLogprobs ? { content: entries.map((e) => chatLogprob(e, this.texts)), refusal: null } : null;
  }

  override openingChunks(numChoices: number): object[] {
    return Array.from({ length: numChoices }, (_, index) =>
      this.chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    );
  }

  protected textChoice(update: ChoiceUpdate): object {
    return { index: update.index, delta: { content: update.text }, logprobs: this.logprobs(update.logprobs), finish_reason: null };
  }

  protected finishChoice(index: number, finishReason: 'stop' | 'length'): object {
    return { index, delta: {}, logprobs: null, finish_reason: finishReason };
  }

  protected responseChoice(choice: ChoiceState): object {
    return {
      index: choice.index,
      message: { role: 'assistant', content: choice.text, refusal: null },
      logprobs: this.logprobs(choice.logprobs),
      finish_reason: openaiFinishReason(choice.finishReason),
    };
  }

  /** vLLM puts a chat request's prompt_logprobs beside its choices (one prompt for all of them). */
  protected override responseExtras(generation: Generation): object {
    if (this.promptLogprobs === null) return {};
    return { prompt_logprobs: vllmPromptLogprobs(generation.choices[0]?.promptLogprobs ?? [], this.promptLogprobs, this.texts) };
  }

  updateLogprobs(update: ChoiceUpdate): ChatLogprob[] | null {
    return this.logprobs(update.logprobs)?.content ?? null;
  }
}
