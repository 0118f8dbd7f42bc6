// `moe-server batch`: an OpenAI Batch API input file through the engine, offline. The input
// is read line by line (a file larger than memory works) while at most `maxInFlight`
// requests run, enough to keep the engine's running set full with more waiting; each result
// is appended as one line the moment it is done, in completion order. A rerun with the same
// output resumes: custom_ids already answered are skipped, and a torn last line (a crash
// mid-write) is cut off first. Stopping (the signal) cancels what runs; those requests get
// no line and run again on the next run.
import { setMaxListeners } from 'node:events';
import type { ServedModel } from '../served-model.ts';
import { AdmissionGate } from '../openai/generation.ts';
import { countLines, LineAppender, readLines, resumeLines } from '../jobs/jsonl-file.ts';
import type { JobProgress } from '../progress.ts';
import { AnsweredSet, errorLine, isLineError, parseBatchLine, responseLine, type BatchRequestLine } from './batch-lines.ts';
import { answerBatchRequest } from './batch-request.ts';

export interface BatchJobOptions {
  input: string;
  output: string;
  /** Requests running or waiting in the engine at once. */
  maxInFlight: number;
  /** Aborting stops the job: nothing new starts, running requests are cancelled and not written. */
  signal?: AbortSignal;
  progress?: JobProgress;
  log?: (message: string) => void;
}

export interface BatchJobSummary {
  numInputLines: number;
  /** Lines answered by an earlier run. */
  numSkipped: number;
  /** Lines written by this run: responses (any status) and error lines. */
  numWritten: number;
  /** Of those, responses with a status other than 200 and error lines. */
  numFailed: number;
  /** Requests stopped by the signal, to run again on the next run. */
  numCancelled: number;
  completionTokens: number;
  seconds: number;
  /** The torn last line cut from the output before resuming, in bytes (0 if none). */
  numTornBytes: number;
  /** Why the job stopped early: 'signal' or the engine's failure; null when every line was handled. */
  stoppedBy: string | null;
}

export async function runBatchJob(model: ServedModel, options: BatchJobOptions): Promise<BatchJobSummary> {
  const started = performance.now();
  const answered = new AnsweredSet();
  const { numTornBytes } = await resumeLines(options.output, (value) => answered.add(value));
  const total = await countLines(options.input);
  const job = new BatchJob(model, options, answered, total);
  try {
    await job.run();
  } finally {
    job.close();
  }
  options.progress?.finish();
  return { ...job.counts, numInputLines: total, numTornBytes, seconds: (performance.now() - started) / 1000, stoppedBy: job.stoppedBy };
}

class BatchJob {
  readonly counts = { numSkipped: 0, numWritten: 0, numFailed: 0, numCancelled: 0, completionTokens: 0 };
  stoppedBy: string | null = null;
  private readonly out: LineAppender;
  private readonly stop = new AbortController();
  private readonly gate: AdmissionGate;
  /** custom_ids of this run's lines so far: a second line with one is a duplicate. */
  private readonly seen = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private numDone = 0;
  private readonly startedAt = performance.now();
  private readonly log: (message: string) => void;

  constructor(
    private readonly model: ServedModel,
    private readonly options: BatchJobOptions,
    private readonly answered: AnsweredSet,
    private readonly total: number,
  ) {
    this.out = new LineAppender(options.output);
    this.gate = new AdmissionGate(options.maxInFlight);
    // Every request in flight listens to the job's stop signal: more than Node's default of 10 is expected.
    setMaxListeners(2 * options.maxInFlight + 8, this.stop.signal);
    this.log = options.log ?? ((message) => console.error(message));
    const { signal } = options;
    if (signal?.aborted) this.halt('signal');
    signal?.addEventListener('abort', () => this.halt('signal'), { once: true });
  }

  async run(): Promise<void> {
    for await (const line of readLines(this.options.input)) {
      if (this.stop.signal.aborted) break;
      this.handle(line.number, line.text);
      while (this.running.size >= this.options.maxInFlight) await Promise.race(this.running);
    }
    await Promise.all(this.running);
  }

  close(): void {
    this.out.close();
  }

  private halt(reason: string): void {
    this.stoppedBy ??= reason;
    this.stop.abort();
  }

  private handle(lineNumber: number, text: string): void {
    if (text.trim() === '') return this.finishLine(); // blank lines carry no request
    const parsed = parseBatchLine(text);
    const { customId } = parsed;
    if (customId !== null ? this.answered.customIds.has(customId) : this.answered.lineNumbers.has(lineNumber)) {
      this.counts.numSkipped++;
      return this.finishLine();
    }
    if (customId !== null && this.seen.has(customId)) {
      const message = `custom_id ${JSON.stringify(customId)} was already used by an earlier line; each must be unique`;
      return this.write(errorLine(lineNumber, { customId: null, code: 'duplicate_custom_id', message }), true);
    }
    if (customId !== null) this.seen.add(customId);
    if (isLineError(parsed)) return this.write(errorLine(lineNumber, parsed), true);
    const task = this.answer(parsed).finally(() => this.running.delete(task));
    this.running.add(task);
  }

  private async answer(request: BatchRequestLine): Promise<void> {
    const { model } = this;
    const answer = await answerBatchRequest(model, this.gate, request.url, request.body, this.stop.signal, this.log);
    if (answer.cancelled) {
      this.counts.numCancelled++;
      return;
    }
    // A request the engine could not answer because it stopped is no answer to keep: a rerun does it.
    if (!model.engine.isRunning) {
      this.counts.numCancelled++;
      this.halt('the engine stopped');
      return;
    }
    this.counts.completionTokens += answer.completionTokens;
    this.write(responseLine(request.customId, answer.statusCode, answer.body), answer.statusCode !== 200);
  }

  private write(line: Parameters<LineAppender['append']>[0], failed: boolean): void {
    this.out.append(line);
    this.counts.numWritten++;
    if (failed) this.counts.numFailed++;
    this.finishLine();
  }

  private finishLine(): void {
    this.numDone++;
    const seconds = (performance.now() - this.startedAt) / 1000;
    const rate = seconds > 0 ? this.counts.completionTokens / seconds : 0;
    this.options.progress?.update(this.numDone, this.total, `${rate.toFixed(1)} generated tok/s`);
  }
}
