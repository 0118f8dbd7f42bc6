// `moe-server batch --input requests.jsonl --output results.jsonl [engine settings]`: flags and usage.
import { ENGINE_SETTINGS, OFFLINE_DEFAULTS, resolveConfig, serveArgOptions, settingsHelp, type ServerConfig } from '../config.ts';
import { jobProgressPrinter } from '../progress.ts';

export const BATCH_USAGE =
  `moe-server batch --model DIR --input requests.jsonl --output results.jsonl [--max-in-flight N] [engine settings]\n\n` +
  `Runs an OpenAI Batch API file ({"custom_id", "method": "POST", "url": "/v1/chat/completions" | "/v1/completions", "body"} per ` +
  `line) through the engine and appends one result line per request to --output, in completion order. Rerun the same command ` +
  `to resume: custom_ids already in --output are skipped.\n\n` +
  `  --input FILE\n      the requests, read line by line\n  --output FILE\n      the results (appended; created when missing)\n` +
  `  --max-in-flight N\n      requests running or waiting in the engine at once; default 2 x --max-num-seqs\n\n` +
  `Engine settings (as for serve; each also reads its environment variable):\n${settingsHelp(ENGINE_SETTINGS, OFFLINE_DEFAULTS)}`;

export const batchOptions = {
  ...serveArgOptions(ENGINE_SETTINGS),
  input: { type: 'string' as const },
  output: { type: 'string' as const },
  'max-in-flight': { type: 'string' as const },
};

export function defaultMaxInFlight(config: ServerConfig): number {
  return 2 * config.maxNumSeqs;
}

export async function runBatchCommand(
  values: Record<string, unknown>,
  input: string,
  output: string,
  maxInFlight?: number,
): Promise<number> {
  const config = resolveConfig(values, process.env, OFFLINE_DEFAULTS);
  // Loaded on demand: `moe-server --help` needs none of the engine.
  const [{ runOfflineJob }, { runBatchJob }] = await Promise.all([import('../jobs/job-command.ts'), import('./batch-job.ts')]);
  return runOfflineJob(config, async (model, signal) => {
    const summary = await runBatchJob(model, {
      input,
      output,
      maxInFlight: maxInFlight ?? defaultMaxInFlight(config),
      signal,
      progress: jobProgressPrinter('batch', 'lines'),
    });
    if (summary.numTornBytes > 0) console.error(`cut a torn last line (${summary.numTornBytes} bytes) from ${output} before resuming`);
    console.error(
      `batch: ${summary.numWritten} lines written (${summary.numFailed} failed), ${summary.numSkipped} already in ${output}, ` +
        `${summary.completionTokens} tokens generated in ${summary.seconds.toFixed(1)} s` +
        (summary.stoppedBy === null ? '' : `; stopped (${summary.stoppedBy}): ${summary.numCancelled} requests cancelled, rerun to finish`),
    );
    return summary.stoppedBy === null ? 0 : 1;
  });
}
