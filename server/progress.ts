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
