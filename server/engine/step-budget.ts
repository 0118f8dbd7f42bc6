// How many prompt tokens a step may read next to the running decodes, from a time budget.
// A prompt chunk rides in the same step as every running stream's next token, so a long
// chunk delays all of them: at 16 streams a 256-token chunk held each one's next token for
// most of a second. With --max-step-ms the scheduler cuts chunks so that a step is predicted
// to take at most that long, decodes first (vLLM's chunked prefill with a token budget does
// the same by count; a time budget follows the model and the machine without tuning).
//
// The prediction is two running averages learnt from the steps themselves: the time of a
// step that only decodes, and the time each prompt token adds to a step.

/** Weight of the newest step in each running average. */
const SMOOTHING = 0.2;
/** Prompt tokens a step may always read while streams decode, so prompts never starve. */
export const MIN_PREFILL_TOKENS = 16;

export class StepBudget {
  private decodeStepMs: number | null = null;
  private msPerPrefillToken: number | null = null;

  /** `maxStepMs` 0 = no time budget. */
  constructor(readonly maxStepMs: number) {}

  /** Learns from a finished step: its decode tokens (one per decoding sequence), its prompt tokens and its time. */
  record(numDecodeTokens: number, numPrefillTokens: number, elapsedMs: number): void {
    if (numPrefillTokens === 0) {
      if (numDecodeTokens > 0) this.decodeStepMs = average(this.decodeStepMs, elapsedMs);
      return;
    }
    // A step without decodes still costs its fixed part; count it as a decode step's.
    const fixed = numDecodeTokens > 0 ? (this.decodeStepMs ?? 0) : 0;
    const perToken = Math.max(elapsedMs - fixed, 0) / numPrefillTokens;
    this.msPerPrefillToken = average(this.msPerPrefillToken, perToken);
  }

  /**
   * Prompt tokens the next step may read while `numDecoding` sequences decode: Infinity when
   * nothing decodes, there is no budget, or nothing has been learnt yet.
   */
  prefillTokens(numDecoding: number): number {
    if (this.maxStepMs <= 0 || numDecoding === 0 || this.msPerPrefillToken === null || this.msPerPrefillToken <= 0) return Infinity;
    const left = this.maxStepMs - (this.decodeStepMs ?? 0);
    return Math.max(MIN_PREFILL_TOKENS, Math.floor(left / this.msPerPrefillToken));
  }
}

function average(previous: number | null, sample: number): number {
  return previous === null ? sample : previous + SMOOTHING * (sample - previous);
}
