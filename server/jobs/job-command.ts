// What the offline commands (batch, distill) share around their job: the model loaded from
// serve's engine settings, and Ctrl-C (or SIGTERM) as a clean stop: the first signal aborts
// the job's signal (it stops starting work, cancels what runs and keeps everything finished),
// a second one exits at once.
import type { ServerConfig } from '../config.ts';
import { loadModel } from '../load-model.ts';
import type { ServedModel } from '../served-model.ts';

/** Exit status of a job stopped by a signal (128 + SIGINT), as shells report it. */
export const STOPPED_EXIT_CODE = 130;

export async function runOfflineJob(
  config: ServerConfig,
  job: (model: ServedModel, signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const model = await loadModel(config);
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stop.signal.aborted) process.exit(STOPPED_EXIT_CODE);
    console.error(
      `\n${signal}: stopping; finished results are kept, the rest runs again when the same command is rerun (again to exit at once)`,
    );
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const code = await job(model, stop.signal);
    return stop.signal.aborted ? STOPPED_EXIT_CODE : code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await model.engine.close();
  }
}
