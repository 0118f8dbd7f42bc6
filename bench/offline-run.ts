// One offline job (batch or distill) in a child process of its own, for the benchmarks: the
// model is loaded first (not timed), then the job runs and its summary (with the job's own
// seconds) goes back over IPC. A fresh process per run, as the prefill benchmark does.
import type { BatchJobSummary } from '../server/batch/batch-job.ts';
import { OFFLINE_DEFAULTS, resolveConfig } from '../server/config.ts';
import type { DistillOptions, DistillSummary } from '../server/distill/distill-job.ts';
import { loadModel } from '../server/load-model.ts';

export type OfflineRunRequest =
  | { kind: 'batch'; flags: Record<string, string>; input: string; output: string; maxInFlight?: number }
  | { kind: 'distill'; flags: Record<string, string>; options: Omit<DistillOptions, 'maxInFlight'> & { maxInFlight?: number } };

/** `cpuSeconds`: the whole process's CPU time (every thread) during the job. */
export type OfflineRunResult =
  { kind: 'batch'; summary: BatchJobSummary; cpuSeconds: number } | { kind: 'distill'; summary: DistillSummary; cpuSeconds: number };

async function run(req: OfflineRunRequest): Promise<OfflineRunResult> {
  // The defaults `moe-server batch` and `distill` run with.
  const config = resolveConfig(req.flags, {}, OFFLINE_DEFAULTS);
  const model = await loadModel(config);
  try {
    const maxInFlight = (req.kind === 'batch' ? req.maxInFlight : req.options.maxInFlight) ?? 2 * config.maxNumSeqs;
    const [{ runBatchJob }, { runDistillJob }] = await Promise.all([
      import('../server/batch/batch-job.ts'),
      import('../server/distill/distill-job.ts'),
    ]);
    const before = process.cpuUsage();
    const cpuSeconds = (): number => {
      const used = process.cpuUsage(before);
      return (used.user + used.system) / 1e6;
    };
    if (req.kind === 'batch') {
      const summary = await runBatchJob(model, { input: req.input, output: req.output, maxInFlight });
      return { kind: 'batch', summary, cpuSeconds: cpuSeconds() };
    }
    const summary = await runDistillJob(model, { ...req.options, maxInFlight });
    return { kind: 'distill', summary, cpuSeconds: cpuSeconds() };
  } finally {
    await model.engine.close();
  }
}

process.once('message', (req: OfflineRunRequest) => {
  run(req).then(
    (result) => process.send?.(result, () => process.exit(0)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
});
