// The loop both offline jobs (batch, distill) run: read the input file line by line (a file
// larger than memory works) while at most `maxInFlight` lines are being answered, enough to
// keep the engine's running set full with more waiting. A stop (the caller's signal, or the
// job itself when the engine stops) aborts `stop`: nothing new starts and what runs is
// cancelled. Progress counts handled lines with the rate a job reports.
import { setMaxListeners } from 'node:events';
import { AdmissionGate } from '../openai/generation.ts';
import type { JobProgress } from '../progress.ts';
import { readLines } from './jsonl-file.ts';

export interface LineJobOptions {
  input: string;
  /** Lines being answered at once. */
  maxInFlight: number;
  /** Aborting stops the job: nothing new starts, running lines are cancelled and not written. */
  signal?: AbortSignal;
  progress?: JobProgress;
  log?: (message: string) => void;
}

export abstract class LineJob {
  /** Why the job stopped early: 'signal' or the engine's failure; null when every line was handled. */
  stoppedBy: string | null = null;
  protected readonly stop = new AbortController();
  protected readonly gate: AdmissionGate;
  protected readonly log: (message: string) => void;
  private readonly running = new Set<Promise<void>>();
  private readonly startedAt = performance.now();
  private numDone = 0;

  constructor(
    private readonly lineOptions: LineJobOptions,
    private readonly total: number,
  ) {
    this.gate = new AdmissionGate(lineOptions.maxInFlight);
    // Every line in flight listens to the job's stop signal: more than Node's default of 10 is expected.
    setMaxListeners(2 * lineOptions.maxInFlight + 8, this.stop.signal);
    this.log = lineOptions.log ?? ((message) => console.error(message));
    const { signal } = lineOptions;
    if (signal?.aborted) this.halt('signal');
    signal?.addEventListener('abort', () => this.halt('signal'), { once: true });
  }

  async run(): Promise<void> {
    for await (const line of readLines(this.lineOptions.input)) {
      if (this.stop.signal.aborted) break;
      this.handle(line.number, line.text);
      while (this.running.size >= this.lineOptions.maxInFlight) await Promise.race(this.running);
    }
    await Promise.all(this.running);
  }

  /** Starts answering one line, synchronously or through `track`; every line ends in one `finishLine`. */
  protected abstract handle(lineNumber: number, text: string): void;

  /** The rate shown with the progress, from the seconds since the job started. */
  protected abstract rate(seconds: number): string;

  protected track(answer: Promise<void>): void {
    const task = answer.finally(() => this.running.delete(task));
    this.running.add(task);
  }

  protected halt(reason: string): void {
    this.stoppedBy ??= reason;
    this.stop.abort();
  }

  protected finishLine(): void {
    this.numDone++;
    const seconds = (performance.now() - this.startedAt) / 1000;
    this.lineOptions.progress?.update(this.numDone, this.total, this.rate(seconds));
  }
}
