// Chat completion bodies and chunks, shaped as OpenAI's (object "chat.completion" and
// "chat.completion.chunk"; logprobs under choices[].logprobs.content). With tools or a
// reasoning parser, each choice's text goes through its ChoiceOutput: deltas carry
// reasoning_content, content and tool_calls, and the message its parsed parts.
import type { TokenLogprob } from '../engine/api.ts';
import { type ChatDelta, type ChatOutputOptions, ChoiceOutput } from './chat-output.ts';
import { ChunkFormat, openaiFinishReason, type FormatOptions } from './format.ts';
import type { ChoiceState, ChoiceUpdate, Generation } from './generation.ts';
import { chatLogprob, type ChatLogprob } from './logprobs.ts';
import { vllmPromptLogprobs } from './prompt-logprobs.ts';

interface ParsedDelta {
  delta: ChatDelta;
  logprobs: TokenLogprob[];
}

export class ChatFormat extends ChunkFormat {
  /** Per choice: its parsers, fed as its updates arrive (streaming) or at the end. */
  private readonly outputs = new Map<number, ChoiceOutput>();
  /** Per choice: logprobs of text the parsers are still holding back. */
  private readonly heldLogprobs = new Map<number, TokenLogprob[]>();

  constructor(
    options: FormatOptions,
    /** null: the text is all content, as it comes. */
    private readonly output: ChatOutputOptions | null = null,
  ) {
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

  override updateChunks(update: ChoiceUpdate): object[] {
    if (this.output === null) return super.updateChunks(update);
    const chunks = this.parsedDeltas(update).map(({ delta, logprobs }) =>
      this.chunk([{ index: update.index, delta, logprobs: this.logprobs(logprobs), finish_reason: null }]),
    );
    // The base class adds the finish chunk; the text has been sent above.
    return [...chunks, ...super.updateChunks({ ...update, text: '', logprobs: [] })];
  }

  /** WebSocket events: content, reasoning and tool-call deltas each have their own type. */
  override streamEvents(update: ChoiceUpdate): object[] {
    if (this.output === null) return super.streamEvents(update);
    const { index } = update;
    return this.parsedDeltas(update).flatMap(({ delta, logprobs }): object[] => {
      if (delta.tool_calls !== undefined) return [{ type: 'response.tool_calls.delta', index, tool_calls: delta.tool_calls }];
      if (delta.reasoning_content !== undefined) return [{ type: 'response.reasoning_text.delta', index, delta: delta.reasoning_content }];
      return [
        { type: 'response.output_text.delta', index, delta: delta.content ?? '', logprobs: this.logprobs(logprobs)?.content ?? null },
      ];
    });
  }

  protected textChoice(update: ChoiceUpdate): object {
    return { index: update.index, delta: { content: update.text }, logprobs: this.logprobs(update.logprobs), finish_reason: null };
  }

  protected finishChoice(index: number, finishReason: 'stop' | 'length'): object {
    return { index, delta: {}, logprobs: null, finish_reason: this.finishReason(index, finishReason) };
  }

  protected responseChoice(choice: ChoiceState): object {
    const reason = openaiFinishReason(choice.finishReason);
    return {
      index: choice.index,
      message: this.message(choice),
      logprobs: this.logprobs(choice.logprobs),
      finish_reason: reason === null ? null : this.finishReason(choice.index, reason),
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

  /** A turn that ends with tool calls ends for them: OpenAI's "tool_calls". */
  private finishReason(index: number, reason: 'stop' | 'length'): 'stop' | 'length' | 'tool_calls' {
    const calls = this.outputs.get(index)?.result().toolCalls.length ?? 0;
    return reason === 'stop' && calls > 0 ? 'tool_calls' : reason;
  }

  private message(choice: ChoiceState): object {
    if (this.output === null) return { role: 'assistant', content: choice.text, refusal: null };
    let output = this.outputs.get(choice.index);
    if (output === undefined || !output.isFinished) {
      // Not streamed (or cut short): parse the whole text.
      output = new ChoiceOutput(this.output);
      output.feed(choice.text);
      output.finish();
      this.outputs.set(choice.index, output);
    }
    const { content, reasoningContent, toolCalls } = output.result();
    return {
      role: 'assistant',
      content,
      refusal: null,
      ...(reasoningContent === null ? {} : { reasoning_content: reasoningContent }),
      ...(toolCalls.length === 0 ? {} : { tool_calls: toolCalls }),
    };
  }

  /**
   * The update's text through its choice's parsers; its logprobs go with the first delta,
   * or wait for the next one while the parsers hold the text back.
   */
  private parsedDeltas(update: ChoiceUpdate): ParsedDelta[] {
    const { index } = update;
    let output = this.outputs.get(index);
    if (output === undefined) {
      output = new ChoiceOutput(this.output!);
      this.outputs.set(index, output);
    }
    const deltas = output.feed(update.text);
    if (update.finishReason !== null) deltas.push(...output.finish());
    const logprobs = [...(this.heldLogprobs.get(index) ?? []), ...update.logprobs];
    this.heldLogprobs.delete(index);
    if (deltas.length === 0 && logprobs.length > 0) {
      if (update.finishReason === null || !this.withLogprobs) this.heldLogprobs.set(index, logprobs);
      else return [{ delta: {}, logprobs }];
    }
    return deltas.map((delta, i) => ({ delta, logprobs: i === 0 ? logprobs : [] }));
  }
}
