// Text completion bodies and chunks, shaped as OpenAI's (object "text_completion"; logprobs
// as columns: tokens, token_logprobs, top_logprobs, text_offset). With `echo` each choice's
// text starts with its prompt, and with logprobs the prompt's tokens lead the columns (the
// first with null), as OpenAI's legacy completions and vLLM do; a stream sends the prompt
// with the choice's first chunk.
import { ChunkFormat, openaiFinishReason, type FormatOptions } from './format.ts';
import type { ChoiceState, ChoiceUpdate } from './generation.ts';
import { type CompletionEntry, completionLogprobs, nextTextOffset, type CompletionLogprobs } from './logprobs.ts';
import { echoEntries, type PromptTokenLogprob, vllmPromptLogprobs } from './prompt-logprobs.ts';
import type { EchoPrompt } from './prompts.ts';

export interface EchoOptions {
  /** Choice i echoes prompt floor(i / n). */
  prompts: EchoPrompt[];
  n: number;
  /** The request's `logprobs`: alternatives per echoed token (the engine may have scored more for prompt_logprobs). */
  numTop: number;
}

export class CompletionFormat extends ChunkFormat {
  /** Per choice: text_offset of its next streamed token. */
  private readonly nextOffsets = new Map<number, number>();

  constructor(
    options: FormatOptions,
    /** When the request asked for `echo`. */
    private readonly echo: EchoOptions | null = null,
  ) {
    super(options, 'text_completion', 'text_completion');
  }

  private echoOf(index: number): EchoPrompt | null {
    return this.echo?.prompts[Math.floor(index / this.echo.n)] ?? null;
  }

  override deltaText(update: ChoiceUpdate): string {
    const echo = update.first ? this.echoOf(update.index) : null;
    return echo === null ? update.text : echo.text + update.text;
  }

  override hasDelta(update: ChoiceUpdate): boolean {
    return super.hasDelta(update) || (update.first && this.echoOf(update.index) !== null);
  }

  protected textChoice(update: ChoiceUpdate): object {
    return { index: update.index, text: this.deltaText(update), logprobs: this.updateLogprobs(update), finish_reason: null };
  }

  protected finishChoice(index: number, finishReason: 'stop' | 'length'): object {
    return { index, text: '', logprobs: null, finish_reason: finishReason };
  }

  protected responseChoice(choice: ChoiceState): object {
    const echo = this.echoOf(choice.index);
    const entries = this.withEcho(choice.index, choice.promptLogprobs, choice.logprobs, true);
    return {
      index: choice.index,
      text: echo === null ? choice.text : echo.text + choice.text,
      logprobs: this.withLogprobs ? completionLogprobs(entries, this.texts, 0) : null,
      finish_reason: openaiFinishReason(choice.finishReason),
      ...(this.promptLogprobs === null
        ? {}
        : { prompt_logprobs: vllmPromptLogprobs(choice.promptLogprobs, this.promptLogprobs, this.texts) }),
    };
  }

  /** Streamed logprobs continue each choice's text_offset where its last update ended. */
  updateLogprobs(update: ChoiceUpdate): CompletionLogprobs | null {
    if (!this.withLogprobs) return null;
    const start = this.nextOffsets.get(update.index) ?? 0;
    const entries = this.withEcho(update.index, update.promptLogprobs, update.logprobs, update.first);
    const logprobs = completionLogprobs(entries, this.texts, start);
    this.nextOffsets.set(update.index, nextTextOffset(logprobs, start));
    return logprobs;
  }

  /** The generated tokens' entries, after the echoed prompt's when this is where the prompt goes. */
  private withEcho(
    index: number,
    scored: readonly PromptTokenLogprob[],
    generated: readonly CompletionEntry[],
    leading: boolean,
  ): readonly CompletionEntry[] {
    const echo = leading ? this.echoOf(index) : null;
    if (echo === null) return generated;
    return [...echoEntries(echo.ids[0], scored, this.echo?.numTop ?? 0), ...generated];
  }
}
