// What every endpoint's formatter provides, so one SSE writer and one WebSocket handler
// serve both chat and completions; the chunk framing both share lives in ChunkFormat.
import type { FinishReason } from '../engine/api.ts';
import type { ChoiceUpdate, Generation, RoutedExperts, Usage } from './generation.ts';
import type { TokenTexts } from './logprobs.ts';

export interface ResponseMeta {
  /** "chatcmpl-..." or "cmpl-..." */
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

export interface EndpointFormat {
  readonly meta: ResponseMeta;
  /** Chunks to send before any text (chat: the role delta of each choice). */
  openingChunks(numChoices: number): object[];
  /** Chunks for one update: its text (with logprobs) and, on a choice's last update, the finish_reason chunk. */
  updateChunks(update: ChoiceUpdate): object[];
  /** The text an update adds to its choice (completions' echo puts the prompt before the first). */
  deltaText(update: ChoiceUpdate): string;
  /** Whether an update has text or logprobs to send. */
  hasDelta(update: ChoiceUpdate): boolean;
  /** The closing chunk with `usage` and no choices (stream_options.include_usage). */
  usageChunk(usage: Usage): object;
  /** The update's logprobs in this endpoint's shape, or null when not requested. */
  updateLogprobs(update: ChoiceUpdate): unknown;
  /** WebSocket events for one update, without the request id (docs/websocket.md). */
  streamEvents(update: ChoiceUpdate): object[];
  /** The whole non-streaming response body. */
  response(generation: Generation): object;
}

/** Our internal 'abort' is no OpenAI finish reason: a cancelled choice has none. */
export function openaiFinishReason(reason: FinishReason | null): 'stop' | 'length' | null {
  return reason === 'abort' ? null : reason;
}

export interface FormatOptions {
  meta: ResponseMeta;
  texts: TokenTexts;
  withLogprobs: boolean;
  /** With include_usage every chunk carries "usage": null until the usage chunk. */
  includeUsage: boolean;
  /** Add `routed_experts` to each choice of the response, or of its last chunk when streaming (extension). */
  withRoutedExperts?: boolean;
  /** vLLM's prompt_logprobs with this many alternatives, in the non-streaming response; null or absent: none. */
  promptLogprobs?: number | null;
}

/** Chunk framing shared by chat and completions; subclasses shape the choices. */
export abstract class ChunkFormat implements EndpointFormat {
  readonly meta: ResponseMeta;
  protected readonly texts: TokenTexts;
  protected readonly withLogprobs: boolean;
  private readonly includeUsage: boolean;
  private readonly withRoutedExperts: boolean;
  protected readonly promptLogprobs: number | null;

  constructor(
    options: FormatOptions,
    /** "chat.completion" or "text_completion". */
    private readonly object: string,
    private readonly chunkObject: string,
  ) {
    this.meta = options.meta;
    this.texts = options.texts;
    this.withLogprobs = options.withLogprobs;
    this.includeUsage = options.includeUsage;
    this.withRoutedExperts = options.withRoutedExperts === true;
    this.promptLogprobs = options.promptLogprobs ?? null;
  }

  /** A choice of a chunk carrying the update's text and logprobs. */
  protected abstract textChoice(update: ChoiceUpdate): object;
  /** The last chunk of a choice. */
  protected abstract finishChoice(index: number, finishReason: 'stop' | 'length'): object;
  /** A choice of the non-streaming response. */
  protected abstract responseChoice(choice: Generation['choices'][number]): object;
  abstract updateLogprobs(update: ChoiceUpdate): unknown;

  openingChunks(_numChoices: number): object[] {
    return [];
  }

  deltaText(update: ChoiceUpdate): string {
    return update.text;
  }

  hasDelta(update: ChoiceUpdate): boolean {
    return update.text !== '' || update.logprobs.length > 0;
  }

  updateChunks(update: ChoiceUpdate): object[] {
    const chunks: object[] = [];
    if (this.hasDelta(update)) chunks.push(this.chunk([this.textChoice(update)]));
    const finishReason = openaiFinishReason(update.finishReason);
    if (finishReason !== null)
      chunks.push(this.chunk([{ ...this.finishChoice(update.index, finishReason), ...this.routed(update.routedExperts) }]));
    return chunks;
  }

  streamEvents(update: ChoiceUpdate): object[] {
    if (!this.hasDelta(update)) return [];
    return [
      { type: 'response.output_text.delta', index: update.index, delta: this.deltaText(update), logprobs: this.updateLogprobs(update) },
    ];
  }

  usageChunk(usage: Usage): object {
    return this.chunk([], usage);
  }

  response(generation: Generation): object {
    const choices = generation.choices.map((c) => ({ ...this.responseChoice(c), ...this.routed(c.routedExperts) }));
    return { ...this.header(this.object), choices, usage: generation.usage, ...this.responseExtras(generation) };
  }

  /** Top-level fields of the non-streaming response beyond OpenAI's (chat's prompt_logprobs). */
  protected responseExtras(_generation: Generation): object {
    return {};
  }

  private routed(routedExperts: RoutedExperts | undefined): object {
    return this.withRoutedExperts ? { routed_experts: routedExperts ?? [] } : {};
  }

  protected chunk(choices: object[], usage?: Usage): object {
    const base = { ...this.header(this.chunkObject), choices };
    return this.includeUsage ? { ...base, usage: usage ?? null } : base;
  }

  private header(object: string): object {
    return { id: this.meta.id, object, created: this.meta.created, model: this.meta.model, system_fingerprint: null };
  }
}
