// One constrained sequence's grammar state: an xgrammar GrammarMatcher plus the mask of the
// state it is in. Per step the engine calls fillNextTokenMask (before sampling), applyMask on
// the sequence's logits row, then acceptToken with the sampled id.
import type { GrammarMatcher } from '@mlc-ai/web-xgrammar';
import { allowedAmong, applyTokenBitmask, isTokenAllowed } from './token-mask.ts';

export class SequenceGrammar {
  /** The mask of the current state; null until filled and after every state change. */
  private mask: Int32Array | null = null;
  private numAccepted = 0;
  private disposed = false;

  constructor(
    private readonly matcher: GrammarMatcher,
    /** The stop tokens the engine ends a sequence on (EOS, <|im_end|>...). */
    readonly stopTokenIds: readonly number[],
  ) {}

  /** Tokens accepted so far (what rollback can undo). */
  get numAcceptedTokens(): number {
    return this.numAccepted;
  }

  /** Computes (once per state) the mask of tokens the grammar allows next. */
  async fillNextTokenMask(): Promise<Int32Array> {
    this.checkLive();
    this.mask ??= await this.matcher.getNextTokenBitmask();
    return this.mask;
  }

  /** The filled mask; throws if the state changed since fillNextTokenMask. */
  currentMask(): Int32Array {
    if (this.mask === null) throw new Error('fillNextTokenMask must run before the mask is used');
    return this.mask;
  }

  /** Refused tokens -> -Infinity in the logits row (see applyTokenBitmask for why). */
  applyMask(logits: Float32Array): void {
    applyTokenBitmask(logits, this.currentMask());
  }

  isTokenAllowed(tokenId: number): boolean {
    return isTokenAllowed(this.currentMask(), tokenId);
  }

  /**
   * The stop tokens allowed now: all of them exactly when the grammar can end here, none
   * while it cannot (a JSON object not yet closed).
   */
  allowedStopTokens(): number[] {
    return allowedAmong(this.currentMask(), this.stopTokenIds);
  }

  /** Advances by one sampled token; false (state unchanged) when the grammar refuses it. */
  acceptToken(tokenId: number): boolean {
    this.checkLive();
    if (!this.matcher.acceptToken(tokenId)) return false;
    this.numAccepted++;
    this.mask = null;
    return true;
  }

  /** A stop token was accepted: the grammar is complete and the sequence must end. */
  isTerminated(): boolean {
    this.checkLive();
    return this.matcher.isTerminated();
  }

  /** Undoes the last numTokens accepted tokens (speculative or jump-forward decoding). */
  rollback(numTokens: number): void {
    this.checkLive();
    if (!Number.isInteger(numTokens) || numTokens < 0 || numTokens > this.numAccepted) {
      throw new RangeError(`cannot roll back ${numTokens} tokens: ${this.numAccepted} were accepted`);
    }
    if (numTokens === 0) return;
    this.matcher.rollBack(numTokens);
    this.numAccepted -= numTokens;
    this.mask = null;
  }

  /** Text every continuation must start with (for jump-forward decoding); "" when none. */
  forcedText(): string {
    this.checkLive();
    return this.matcher.findJumpForwardString();
  }

  /** Frees the WebAssembly matcher; the sequence finished or was aborted. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.mask = null;
    this.matcher.dispose();
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('this sequence grammar was disposed');
  }
}
