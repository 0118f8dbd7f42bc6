// Continuous batching: which sequences the next model step runs, and how many tokens of each.
// nano-vllm's shape (waiting and running queues, first come first served) with chunked
// prefill as in vLLM: every step first gives each running sequence its next tokens (one for a
// decode, a chunk for a prompt still being read), then admits waiting sequences while the
// step's token budget, the running-set cap and the cache allow. When the cache runs out, the
// newest running sequence is preempted: its blocks are freed and it waits at the head of the
// queue, to be recomputed (prompt plus what it generated) when room returns. With a step time
// budget (step-budget.ts), prompt chunks also fit in the time the decodes leave.
import type { SchedulerLimits } from './api.ts';
import type { BlockManager } from './block-manager.ts';
import type { Sequence } from './sequence.ts';
import { StepBudget } from './step-budget.ts';

export interface ScheduledChunk {
  seq: Sequence;
  /** Uncached tokens of the sequence this step computes. */
  numTokens: number;
  /** True when they are all its uncached tokens: the step's logits give its next token. */
  completes: boolean;
}

export class Scheduler {
  readonly waiting: Sequence[] = [];
  /** In admission order: the last is the newest, the first to be preempted. */
  readonly running: Sequence[] = [];
  numPreemptions = 0;
  private readonly stepBudget: StepBudget;

  constructor(
    readonly blocks: BlockManager,
    readonly limits: SchedulerLimits,
  ) {
    this.stepBudget = new StepBudget(limits.maxStepMs ?? 0);
  }

  add(seq: Sequence): void {
    this.waiting.push(seq);
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  schedule(): ScheduledChunk[] {
    const chunks: ScheduledChunk[] = [];
    const budget = { tokens: this.limits.maxBatchTokens, prefill: this.stepBudget.prefillTokens(this.numDecoding()) };
    let preempted = false;
    for (let i = 0; i < this.running.length && budget.tokens > 0; i++) {
      const seq = this.running[i];
      const numTokens = this.take(budget, seq.numUncachedTokens);
      if (numTokens === 0) continue; // a prompt chunk that must wait for a step with time left
      const room = this.makeRoom(seq, seq.blocks.numCachedTokens + numTokens);
      preempted ||= room !== 'fits';
      if (room === 'preempted-self') break; // it was the newest: nothing after it runs
      chunks.push(this.chunk(seq, numTokens));
    }
    // Admitting while preempting would only take back the blocks just freed.
    if (!preempted) this.admit(chunks, budget);
    return chunks;
  }

  /** Teaches the step budget what a step of these chunks cost. */
  recordStep(chunks: readonly ScheduledChunk[], elapsedMs: number): void {
    let numDecode = 0;
    let numPrefill = 0;
    for (const { numTokens } of chunks) {
      if (numTokens === 1) numDecode++;
      else numPrefill += numTokens;
    }
    this.stepBudget.record(numDecode, numPrefill, elapsedMs);
  }

  /** Running sequences that need exactly one token: the decodes a prompt chunk would delay. */
  private numDecoding(): number {
    let n = 0;
    for (const seq of this.running) if (seq.numUncachedTokens === 1) n++;
    return n;
  }

  /** Tokens of a chunk wanting `wanted` within the step's budgets; a chunk of several is a prompt's and counts against its time. */
  private take(budget: { tokens: number; prefill: number }, wanted: number): number {
    let numTokens = Math.min(wanted, budget.tokens);
    if (numTokens > 1) {
      numTokens = Math.min(numTokens, budget.prefill);
      budget.prefill -= numTokens;
    }
    budget.tokens -= numTokens;
    return numTokens;
  }

  /** Takes a finished (or aborted) sequence out of whichever queue holds it and frees its blocks and grammar. */
  remove(seq: Sequence): void {
    for (const queue of [this.running, this.waiting]) {
      const index = queue.indexOf(seq);
      if (index >= 0) queue.splice(index, 1);
    }
    this.blocks.release(seq.blocks);
    seq.grammar?.close();
  }

  private admit(chunks: ScheduledChunk[], budget: { tokens: number; prefill: number }): void {
    while (this.waiting.length > 0 && this.running.length < this.limits.maxNumSeqs && budget.tokens > 0) {
      const seq = this.waiting[0];
      const tokens = seq.allTokens();
      const matched = this.blocks.matchPrefix(seq.blocks, tokens, seq.maxPrefixCachedTokens);
      const numCached = matched.length * this.blocks.blockSize;
      const numTokens = this.take(budget, tokens.length - numCached);
      if (numTokens === 0 || !this.blocks.canAllocate(matched, numCached + numTokens)) break;
      this.blocks.allocate(seq.blocks, matched, numCached + numTokens, seq.promptTokens.length);
      seq.numPrefixCachedTokens ??= numCached;
      this.waiting.shift();
      this.running.push(seq);
      chunks.push(this.chunk(seq, numTokens));
    }
  }

  /** Frees blocks, newest sequence first, until `seq` can hold `numTokens`. */
  private makeRoom(seq: Sequence, numTokens: number): 'fits' | 'preempted-other' | 'preempted-self' {
    let outcome: 'fits' | 'preempted-other' = 'fits';
    while (!this.blocks.canGrow(seq.blocks, numTokens)) {
      const victim = this.running[this.running.length - 1];
      this.preempt(victim);
      if (victim === seq) return 'preempted-self';
      outcome = 'preempted-other';
    }
    this.blocks.grow(seq.blocks, numTokens);
    return outcome;
  }

  private preempt(seq: Sequence): void {
    this.running.pop();
    this.blocks.release(seq.blocks);
    this.waiting.unshift(seq);
    this.numPreemptions++;
  }

  private chunk(seq: Sequence, numTokens: number): ScheduledChunk {
    return { seq, numTokens, completes: numTokens === seq.numUncachedTokens };
  }
}
