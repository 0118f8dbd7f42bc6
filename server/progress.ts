// Progress lines for long work (writing checkpoints, compiling, loading): rewritten in place
// on a terminal, a line per 10% otherwise (logs, CI).

export type ProgressCallback = (done: number, total: number) => void;

export function progressPrinter(label: string, stream: NodeJS.WriteStream = process.stderr): ProgressCallback {
  let lastDecile = -1;
  const started = performance.now();
  return (done, total) => {
    const fraction = total > 0 ? done / total : 1;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const line = `${label}: ${done}/${total} (${Math.floor(fraction * 100)}%, ${seconds}s)`;
    if (stream.isTTY) {
      stream.write(`\r${line}${done >= total ? '\n' : ''}`);
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile !== lastDecile || done >= total) {
      lastDecile = decile;
      stream.write(`${line}\n`);
    }
  };
}

/** Seconds as "42s", "7m05s" or "3h12m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export interface JobProgress {
  /** `done` counts items finished in earlier runs too; the rate counts this run's only. */
  update(done: number, total: number, detail?: string): void;
  /** Prints the last state once more, ending the line. */
  finish(): void;
}

/**
 * Progress of a long job (batch, distill) with its rate and ETA: rewritten in place on a
 * terminal (at most 4 times a second), otherwise a line every `everySeconds` (logs, CI).
 */
export function jobProgressPrinter(
  label: string,
  unit: string,
  stream: NodeJS.WriteStream = process.stderr,
  everySeconds = 30,
): JobProgress {
  const started = performance.now();
  let first: number | null = null;
  let lastPrinted = -Infinity;
  let line = '';
  let printed = '';
  const render = (done: number, total: number, detail?: string): string => {
    first ??= done;
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? (done - first) / seconds : 0;
    const eta = rate > 0 ? formatDuration((total - done) / rate) : '?';
    const percent = total > 0 ? Math.floor((100 * done) / total) : 100;
    const extra = detail === undefined ? '' : `, ${detail}`;
    return `${label}: ${done}/${total} ${unit} (${percent}%), ${rate.toFixed(2)} ${unit}/s${extra}, ${formatDuration(seconds)} elapsed, ETA ${eta}`;
  };
  return {
    update(done, total, detail) {
      line = render(done, total, detail);
      const now = performance.now();
      const interval = stream.isTTY ? 250 : everySeconds * 1000;
      if (now - lastPrinted < interval && done < total) return;
      lastPrinted = now;
      printed = line;
      stream.write(stream.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
    },
    finish() {
      if (stream.isTTY && line !== '') stream.write(`\r${line}\x1b[K\n`);
      else if (line !== printed) stream.write(`${line}\n`);
    },
  };
}
