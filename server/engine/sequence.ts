// A Sequence is the one object passed between the scheduler, the model runner and
// postprocessing: its tokens, its cache, its sampling state and its timings.
import { Rng } from './rng.ts';
import type { FinishReason, GenerationParams } from './api.ts';
import type { IncrementalDetokenizer } from './detokenizer.ts';
import type { SequenceConstraint } from './grammar/grammar-service.ts';
import { SequenceBlocks } from './block-manager.ts';
import { StopStringMatcher } from './stop-strings.ts';

export interface SequenceTimings {
  arrivedAt: number;
  /** When the first step containing this sequence started. */
  scheduledAt: number | null;
  firstTokenAt: number | null;
  finishedAt: number | null;
  /** Milliseconds spent in steps that processed prompt tokens, and in decode steps. */
  prefillMs: number;
  decodeMs: number;
}

export class Sequence {
  readonly outputTokens: number[] = [];
  /** Counts of generated tokens, for presence and frequency penalties. */
  readonly outputCounts = new Map<number, number>();
  readonly promptTokenSet: ReadonlySet<number>;
  readonly rng: Rng;
  finishReason: FinishReason | null = null;
  readonly timings: SequenceTimings;
  /** Its KV cache blocks; empty while waiting (and again after a preemption). */
  readonly blocks = new SequenceBlocks();
  /** Constrained decoding: its grammar's masks (null: unconstrained). */
  grammar: SequenceConstraint | null = null;
  /** Logits whose sampling waits for the grammar's next mask (see Engine.sampleOrDefer). */
  deferredLogits: Float32Array | null = null;
  /** Prompt tokens the prefix cache served when the sequence was first scheduled; null before. */
  numPrefixCachedTokens: number | null = null;
  /** Next prompt position to score (requests with promptLogprobs); positions before it have been scored. */
  nextScoredPosition: number;
  private readonly stopMatcher: StopStringMatcher;
  private stopStringMatched = false;

  constructor(
    readonly id: string,
    readonly promptTokens: readonly number[],
    readonly params: GenerationParams,
    readonly detokenizer: IncrementalDetokenizer,
  ) {
    this.rng = new Rng(params.seed ?? undefined);
    this.promptTokenSet = new Set(promptTokens);
    this.stopMatcher = new StopStringMatcher(params.stopStrings ?? []);
    this.nextScoredPosition = params.promptLogprobs?.from ?? 1;
    this.timings = { arrivedAt: performance.now(), scheduledAt: null, firstTokenAt: null, finishedAt: null, prefillMs: 0, decodeMs: 0 };
  }

  get numTokens(): number {
    return this.promptTokens.length + this.outputTokens.length;
  }

  /** Prompt and generated tokens, in order. */
  allTokens(): number[] {
    return this.promptTokens.concat(this.outputTokens);
  }

  /**
   * Tokens not yet in the cache: the prompt (or its rest) at first, then the last sampled
   * token; after a preemption, everything again.
   */
  get numUncachedTokens(): number {
    return this.numTokens - this.blocks.numCachedTokens;
  }

  /** The next `count` tokens the cache lacks. */
  uncachedTokens(count: number): number[] {
    const start = this.blocks.numCachedTokens;
    const numPrompt = this.promptTokens.length;
    const tokens: number[] = [];
    for (let i = start; i < start + count; i++) tokens.push(i < numPrompt ? this.promptTokens[i] : this.outputTokens[i - numPrompt]);
    return tokens;
  }

  /** Whether prompt positions remain to be scored (requests with promptLogprobs). */
  get isScoringPrompt(): boolean {
    return this.params.promptLogprobs != null && this.nextScoredPosition < this.promptTokens.length;
  }

  /**
   * Most leading tokens the prefix cache may serve: none without prefixCache; while positions
   * remain to be scored, none at or past the first of them minus one (its logits row is that
   * token's output); otherwise no limit.
   */
  get maxPrefixCachedTokens(): number {
    if (this.params.prefixCache === false) return 0;
    return this.isScoringPrompt ? this.nextScoredPosition - 1 : this.numTokens;
  }

  /** Whether the prompt is still (partly) uncached: its steps count as prefill. */
  get isPrefilling(): boolean {
    return this.blocks.numCachedTokens < this.promptTokens.length;
  }

  get isFinished(): boolean {
    return this.finishReason !== null;
  }

  append(token: number): void {
    this.outputTokens.push(token);
    this.outputCounts.set(token, (this.outputCounts.get(token) ?? 0) + 1);
  }

  /** The text a new token adds, minus anything that is or may become a stop string. */
  emitText(token: number): string {
    const match = this.stopMatcher.push(this.detokenizer.push(token));
    if (match.stopped) this.markStopStringMatched();
    return match.text;
  }

  /** What the detokenizer and the stop matcher still hold once the sequence has ended. */
  finalText(): string {
    if (this.finishReason === 'abort' || this.stopStringMatched) return '';
    const match = this.stopMatcher.push(this.detokenizer.flush());
    if (!match.stopped) return match.text + this.stopMatcher.flush();
    this.markStopStringMatched();
    return match.text;
  }

  private markStopStringMatched(): void {
    this.stopStringMatched = true;
    this.finishReason = 'stop';
  }
}
