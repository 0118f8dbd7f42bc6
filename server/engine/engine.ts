// The engine loop's body: schedule -> run one model step -> postprocess. It owns the
// sequences (through the scheduler's queues); the worker feeds it requests and forwards its
// events.
import type { StepRunner } from '../../runtime/step-runner.ts';
import type { StepSequence } from '../../runtime/step-batch.ts';
import type { EngineStats, GenerationEvent, PromptLogprobs } from './api.ts';
import {
  createScoringScratch,
  logitRows,
  numLogitRows,
  type ScoringScratch,
  type ScoringWindow,
  scoreWindow,
  scoringWindow,
} from './prompt-scoring.ts';
import type { SequenceEvent, StepOutput } from './protocol.ts';
import { applyPenalties, createSamplerScratch, logSoftmax, type SamplerScratch, sampleToken, topLogprobs } from './sampler.ts';
import type { Scheduler } from './scheduler.ts';
import type { Sequence } from './sequence.ts';
import { buildStepReport } from './step-report.ts';

export class Engine {
  private readonly samplerScratch: SamplerScratch;
  /** Made on first use: most engines never score a prompt. */
  private scoringScratch: ScoringScratch | null = null;
  /**
   * Events of the step in progress. Sequences finished (or cancelled) earlier are dropped at
   * the step's start; if the step then throws, failAll() still delivers their events, or
   * their clients would wait forever for an end that was already decided.
   */
  private stepEvents: SequenceEvent[] = [];

  constructor(
    readonly runner: StepRunner,
    readonly scheduler: Scheduler,
  ) {
    this.samplerScratch = createSamplerScratch(runner.spec.vocabSize);
  }

  add(seq: Sequence): void {
    this.scheduler.add(seq);
  }

  /** Marks a sequence aborted; it is dropped (and its cache freed) at the next step boundary. */
  cancel(seqId: string): boolean {
    const seq = this.sequences().find((s) => s.id === seqId);
    if (!seq || seq.isFinished) return false;
    seq.finishReason = 'abort';
    return true;
  }

  /** Ends every sequence after a step failed; their clients get the message (and any event the step had made). */
  failAll(message: string): SequenceEvent[] {
    const events = this.stepEvents;
    this.stepEvents = [];
    for (const seq of this.sequences()) {
      this.scheduler.remove(seq);
      events.push(failed(seq, message));
    }
    return events;
  }

  get hasWork(): boolean {
    return this.scheduler.hasWork;
  }

  stats(): EngineStats {
    const { scheduler } = this;
    const { blocks } = scheduler;
    return {
      numRunning: scheduler.running.length,
      numWaiting: scheduler.waiting.length,
      kvBlocksUsed: blocks.numUsedBlocks,
      kvBlocksTotal: blocks.numBlocks,
      kvBlockSize: blocks.blockSize,
      numPreemptions: scheduler.numPreemptions,
      prefixCacheQueryTokens: blocks.numPrefixQueryTokens,
      prefixCacheHitTokens: blocks.numPrefixHitTokens,
    };
  }

  /** One step: drop ended sequences, schedule, run the model, sample. */
  async step(): Promise<StepOutput> {
    const events: SequenceEvent[] = [];
    this.stepEvents = events;
    this.dropFinished(events);
    this.sampleDeferred(events);
    const preemptionsBefore = this.scheduler.numPreemptions;
    const chunks = this.scheduler.schedule();
    if (chunks.length === 0) {
      if (this.scheduler.numPreemptions === preemptionsBefore) this.failUnschedulable(events);
      this.stepEvents = [];
      await this.awaitDeferred();
      return { events, report: null };
    }
    const started = performance.now();
    const windows = chunks.map(({ seq, numTokens }) => scoringWindow(seq, seq.blocks.numCachedTokens, numTokens));
    const inputs: StepSequence[] = chunks.map(({ seq, numTokens, completes }, i) => ({
      tokens: seq.uncachedTokens(numTokens),
      cache: seq.blocks,
      logits: logitRows(windows[i], numTokens, completes && seq.params.maxTokens > 0),
    }));
    const isPrefill = chunks.map(({ seq }) => seq.isPrefilling);
    for (const { seq } of chunks) seq.timings.scheduledAt ??= started;
    const result = await this.runner.step(inputs);
    const elapsed = performance.now() - started;
    this.scheduler.recordStep(chunks, elapsed);
    const report = buildStepReport(
      chunks.map(({ seq }) => seq.id),
      inputs,
      result,
      elapsed,
    );
    let row = 0;
    chunks.forEach((chunk, i) => {
      const { seq } = chunk;
      if (isPrefill[i]) seq.timings.prefillMs += elapsed;
      else seq.timings.decodeMs += elapsed;
      this.scheduler.blocks.registerFullBlocks(seq.blocks, () => seq.allTokens());
      const firstRow = row;
      const numRows = numLogitRows(inputs[i].logits, chunk.numTokens);
      row += numRows;
      if (seq.isFinished) return; // cancelled while the step ran
      // The rows are the last numRows of the chunk's tokens.
      const rowOf = (tokenRow: number): Float32Array => this.logitsRow(result.logits, firstRow + tokenRow - (chunk.numTokens - numRows));
      const window = windows[i];
      if (window !== null) events.push({ seqId: seq.id, event: { type: 'prompt_logprobs', scores: this.score(seq, window, rowOf) } });
      if (!chunk.completes) return;
      if (seq.params.maxTokens === 0)
        seq.finishReason = 'length'; // scored, nothing to generate
      else this.sampleOrDefer(seq, rowOf(chunk.numTokens - 1), events);
    });
    this.dropFinished(events);
    this.stepEvents = [];
    return { events, report };
  }

  /**
   * A constrained sequence whose next mask the grammar worker has not finished yet keeps its
   * logits and skips steps until the mask is there: the others in the batch never wait for
   * it. A grammar that failed (refused a sampled token, or its worker died) ends the sequence.
   */
  private sampleOrDefer(seq: Sequence, logits: Float32Array, events: SequenceEvent[]): void {
    const status = seq.grammar?.status ?? 'ready';
    seq.deferredLogits = status === 'pending' ? logits.slice() : null;
    if (status === 'ready') events.push(this.sampleOrFail(seq, logits));
    else if (status === 'failed') {
      this.scheduler.remove(seq);
      events.push(failed(seq, 'the output grammar failed (it refused a token its own mask allowed)'));
    }
  }

  /** Samples the deferred sequences whose masks have come. */
  private sampleDeferred(events: SequenceEvent[]): void {
    for (const seq of [...this.scheduler.running]) {
      const logits = seq.deferredLogits;
      if (logits !== null && !seq.isFinished && seq.grammar?.status !== 'pending') this.sampleOrDefer(seq, logits, events);
    }
  }

  /** Nothing else to run: wait for a deferred sequence's mask rather than spin. */
  private async awaitDeferred(): Promise<void> {
    const waiting = this.scheduler.running.filter((seq) => seq.deferredLogits !== null && seq.grammar !== null);
    if (waiting.length > 0) await Promise.race(waiting.map((seq) => seq.grammar!.settled()));
  }

  /**
   * postprocess(), or, when this sequence alone cannot go on (its logits leave nothing to
   * sample, say), its end: one request's failure must not fail the others in the step.
   */
  private sampleOrFail(seq: Sequence, logits: Float32Array): SequenceEvent {
    try {
      return { seqId: seq.id, event: this.postprocess(seq, logits) };
    } catch (err) {
      this.scheduler.remove(seq);
      return failed(seq, `could not sample a token: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private score(seq: Sequence, window: ScoringWindow, rowOf: (row: number) => Float32Array): PromptLogprobs {
    this.scoringScratch ??= createScoringScratch(this.runner.spec.vocabSize);
    return scoreWindow(seq, window, rowOf, this.scoringScratch);
  }

  /**
   * With nothing running, the head of the queue always fits (the context length is capped at
   * the cache size), so an empty step here is a bug; failing that request beats spinning.
   */
  private failUnschedulable(events: SequenceEvent[]): void {
    const head = this.scheduler.waiting[0];
    if (this.scheduler.running.length > 0 || head === undefined) return;
    this.scheduler.remove(head);
    events.push(failed(head, 'the request does not fit in the KV cache'));
  }

  private logitsRow(logits: Float32Array, row: number): Float32Array {
    const vocab = this.runner.spec.vocabSize;
    return logits.subarray(row * vocab, (row + 1) * vocab);
  }

  private sequences(): Sequence[] {
    return [...this.scheduler.running, ...this.scheduler.waiting];
  }

  private postprocess(seq: Sequence, logits: Float32Array): GenerationEvent {
    const logprobs = seq.params.topLogprobs === null ? null : logSoftmax(logits);
    applyPenalties(logits, seq.params.sampling, seq.outputCounts, seq.promptTokenSet);
    // After the penalties and logit_bias, so that neither can bring back a refused token.
    seq.grammar?.applyMask(logits);
    const token = sampleToken(logits, seq.params.sampling, seq.rng, this.samplerScratch);
    seq.append(token);
    seq.timings.firstTokenAt ??= performance.now();
    // A grammar ends with a stop token, even one ignore_eos would run past.
    const grammarComplete = seq.grammar?.completesWith(token) === true;
    const stopped = grammarComplete || (!seq.params.ignoreEos && seq.params.stopTokenIds.includes(token));
    if (stopped) seq.finishReason = 'stop';
    else if (seq.outputTokens.length >= seq.params.maxTokens) seq.finishReason = 'length';
    // A stop token ends the text; it is not part of it. A stop string may end it here too.
    const text = stopped ? '' : seq.emitText(token);
    if (!seq.isFinished) seq.grammar?.advance(token);
    const logprob = logprobs === null ? null : { token, logprob: logprobs[token], top: topLogprobs(logprobs, seq.params.topLogprobs ?? 0) };
    return { type: 'token', token, text, logprob };
  }

  private dropFinished(events: SequenceEvent[]): void {
    for (const seq of this.sequences()) {
      if (!seq.isFinished) continue;
      this.scheduler.remove(seq);
      seq.timings.finishedAt = performance.now();
      // First: the held-back text can still complete a stop string and turn 'length' into 'stop'.
      const text = seq.finalText();
      const event: GenerationEvent = {
        type: 'finished',
        finishReason: seq.finishReason ?? 'abort',
        text,
        promptTokens: seq.promptTokens.length,
        cachedTokens: seq.numPrefixCachedTokens ?? 0,
        completionTokens: seq.outputTokens.length,
        prefillMs: seq.timings.prefillMs,
        decodeMs: seq.timings.decodeMs,
        queueMs: (seq.timings.scheduledAt ?? seq.timings.finishedAt) - seq.timings.arrivedAt,
      };
      events.push({ seqId: seq.id, event });
    }
  }
}

/** A sequence's end by a fault: the engine's, not the client's (kind 'internal'). */
function failed(seq: Sequence, message: string): SequenceEvent {
  return { seqId: seq.id, event: { type: 'error', kind: 'internal', message } };
}
