// Progress lines for long work (writing checkpoints, compiling, loading), with the rate so far
// and the time left at that rate: rewritten in place on a terminal, a line per 10% otherwise
// (logs, CI).

export type ProgressCallback = (done: number, total: number) => void;

export function progressPrinter(label: string, stream: NodeJS.WriteStream = process.stderr): ProgressCallback {
  let lastDecile = -1;
  const started = performance.now();
  return (done, total) => {
    const fraction = total > 0 ? done / total : 1;
    const elapsed = (performance.now() - started) / 1000;
    const line = `${label}: ${done}/${total} (${Math.floor(fraction * 100)}%, ${elapsed.toFixed(1)}s${rateAndEta(done, total, elapsed)})`;
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

/** ", 12.3/s, ETA 4m05s" once anything is done; nothing before (no rate yet) or at the end. */
export function rateAndEta(done: number, total: number, elapsedSeconds: number): string {
  if (done <= 0 || elapsedSeconds <= 0 || done >= total) return '';
  const rate = done / elapsedSeconds;
  return `, ${rate >= 10 ? rate.toFixed(0) : rate.toPrecision(2)}/s, ETA ${formatDuration((total - done) / rate)}`;
}

/** 59 -> "59s", 245 -> "4m05s", 7322 -> "2h02m". */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
