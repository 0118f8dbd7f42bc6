// `moe-server batch`: an OpenAI Batch API input file through the engine, offline. The input
// is read line by line (a file larger than memory works) while at most `maxInFlight`
// requests run, enough to keep the engine's running set full with more waiting; each result
// is appended as one line the moment it is done, in completion order. A rerun with the same
// output resumes: custom_ids already answered are skipped, and a torn last line (a crash
// mid-write) is cut off first. Stopping (the signal) cancels what runs; those requests get
// no line and run again on the next run.
import type { ServedModel } from '../served-model.ts';
import { countLines, LineAppender, resumeLines } from '../jobs/jsonl-file.ts';
import { LineJob, type LineJobOptions } from '../jobs/line-job.ts';
import { AnsweredSet, errorLine, isLineError, parseBatchLine, responseLine, type BatchRequestLine } from './batch-lines.ts';
import { answerBatchRequest } from './batch-request.ts';

export interface BatchJobOptions extends LineJobOptions {
  output: string;
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

class BatchJob extends LineJob {
  readonly counts = { numSkipped: 0, numWritten: 0, numFailed: 0, numCancelled: 0, completionTokens: 0 };
  private readonly out: LineAppender;
  /** custom_ids of this run's lines so far: a second line with one is a duplicate. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly model: ServedModel,
    options: BatchJobOptions,
    private readonly answered: AnsweredSet,
    total: number,
  ) {
    super(options, total);
    this.out = new LineAppender(options.output);
  }

  close(): void {
    this.out.close();
  }

  protected rate(seconds: number): string {
    return `${(seconds > 0 ? this.counts.completionTokens / seconds : 0).toFixed(1)} generated tok/s`;
  }

  protected handle(lineNumber: number, text: string): void {
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
    this.track(this.answer(parsed));
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
}
