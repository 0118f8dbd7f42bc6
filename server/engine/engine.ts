// The engine loop's body: schedule -> run one model step -> postprocess. It owns the
// sequences; the worker feeds it requests and forwards its events.
import type { ModelRunner, StepSequence } from './model-runner.ts';
import { applyPenalties, createSamplerScratch, logSoftmax, type SamplerScratch, sampleToken, topLogprobs } from './sampler.ts';
import type { FinishReason, Sequence } from './sequence.ts';
import { buildStepReport, type StepReport } from './step-stats.ts';

export interface TokenLogprob {
  token: number;
  logprob: number;
  top: Array<{ token: number; logprob: number }>;
}

export type EngineEvent =
  | { type: 'token'; seqId: string; token: number; text: string; logprob: TokenLogprob | null }
  | {
      type: 'finished';
      seqId: string;
      finishReason: FinishReason;
      /** Text held back by the detokenizer (an incomplete character at the very end). */
      text: string;
      promptTokens: number;
      completionTokens: number;
      prefillMs: number;
      decodeMs: number;
      queueMs: number;
    }
  | { type: 'failed'; seqId: string; message: string };

export class Engine {
  private readonly running: Sequence[] = [];
  private readonly samplerScratch: SamplerScratch;
  /** Sees every model step's report (metrics, the routing debug hook); set by the worker. */
  onStep: ((report: StepReport) => void) | null = null;

  constructor(readonly runner: ModelRunner) {
    this.samplerScratch = createSamplerScratch(runner.spec.vocabSize);
  }

  add(seq: Sequence): void {
    this.running.push(seq);
  }

  /** Marks a sequence aborted; it is dropped (and its cache freed) at the next step boundary. */
  cancel(seqId: string): boolean {
    const seq = this.running.find((s) => s.id === seqId);
    if (!seq || seq.isFinished) return false;
    seq.finishReason = 'abort';
    return true;
  }

  /** Ends every sequence after a step failed; their clients get the message. */
  failAll(message: string): EngineEvent[] {
    const events: EngineEvent[] = this.running.map((seq) => ({ type: 'failed', seqId: seq.id, message }));
    this.running.length = 0;
    return events;
  }

  get hasWork(): boolean {
    return this.running.length > 0;
  }

  get numRunning(): number {
    return this.running.length;
  }

  async step(): Promise<EngineEvent[]> {
    const events: EngineEvent[] = [];
    this.dropFinished(events);
    const batch = this.running.slice();
    if (batch.length === 0) return events;
    const started = performance.now();
    const inputs: StepSequence[] = batch.map((seq) => ({ tokens: seq.pendingTokens(), cache: seq.cache, logits: 'last' }));
    const isPrefill = batch.map((seq) => seq.cache.numCachedTokens < seq.promptTokens.length);
    for (const seq of batch) seq.timings.scheduledAt ??= started;
    const result = await this.runner.step(inputs);
    const elapsed = performance.now() - started;
    this.onStep?.(buildStepReport(batch.map((seq) => seq.id), inputs, result, elapsed));
    const vocab = this.runner.spec.vocabSize;
    batch.forEach((seq, i) => {
      if (isPrefill[i]) seq.timings.prefillMs += elapsed;
      else seq.timings.decodeMs += elapsed;
      if (seq.isFinished) return; // cancelled while the step ran
      events.push(this.postprocess(seq, result.logits.subarray(i * vocab, (i + 1) * vocab)));
    });
    this.dropFinished(events);
    return events;
  }

  private postprocess(seq: Sequence, logits: Float32Array): EngineEvent {
    const logprobs = seq.params.topLogprobs === null ? null : logSoftmax(logits);
    applyPenalties(logits, seq.params.sampling, seq.outputCounts, seq.promptTokenSet);
    const token = sampleToken(logits, seq.params.sampling, seq.rng, this.samplerScratch);
    seq.append(token);
    seq.timings.firstTokenAt ??= performance.now();
    const stopped = !seq.params.ignoreEos && seq.params.stopTokenIds.includes(token);
    if (stopped) seq.finishReason = 'stop';
    else if (seq.outputTokens.length >= seq.params.maxTokens || seq.numTokens >= seq.cache.maxTokens) seq.finishReason = 'length';
    // A stop token ends the text; it is not part of it. A stop string may end it here too.
    const text = stopped ? '' : seq.emitText(token);
    const logprob =
      logprobs === null ? null : { token, logprob: logprobs[token], top: topLogprobs(logprobs, seq.params.topLogprobs ?? 0) };
    return { type: 'token', seqId: seq.id, token, text, logprob };
  }

  private dropFinished(events: EngineEvent[]): void {
    for (let i = this.running.length - 1; i >= 0; i--) {
      const seq = this.running[i];
      if (!seq.isFinished) continue;
      this.running.splice(i, 1);
      seq.timings.finishedAt = performance.now();
      // First: the held-back text can still complete a stop string and turn 'length' into 'stop'.
      const text = seq.finalText();
      events.push({
        type: 'finished',
        seqId: seq.id,
        finishReason: seq.finishReason ?? 'abort',
        text,
        promptTokens: seq.promptTokens.length,
        completionTokens: seq.outputTokens.length,
        prefillMs: seq.timings.prefillMs,
        decodeMs: seq.timings.decodeMs,
        queueMs: (seq.timings.scheduledAt ?? seq.timings.finishedAt) - seq.timings.arrivedAt,
      });
    }
  }
}
