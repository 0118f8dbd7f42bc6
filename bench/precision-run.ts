// One precision's timing run, in a child process of its own: each precision starts from a
// clean process (heap, allocator, thread pools), so one run's leftovers cannot slow the next.
// Receives a PrecisionRunRequest over IPC, answers with PrecisionTimings, exits.
import { ModelRunner } from '../runtime/model-runner.ts';
import { openModelSessions } from '../runtime/model-sessions.ts';
import { argmax } from '../server/engine/sampler.ts';
import type { CompiledModel } from '../models/compile.ts';
import { soloCache } from './solo-cache.ts';

export interface PrecisionRunRequest {
  compiled: CompiledModel;
  threads: number;
  promptTokens: number;
  decodeTokens: number;
  /** Also time the prefill returning every position's logits, as teacher-forced scoring needs. */
  allLogitsRows?: boolean;
}

export interface PrecisionTimings {
  prefillMs: number[];
  decodeStepMs: number[];
  /** With allLogitsRows: the same prefill computing the logits of every position. */
  prefillAllRowsMs?: number[];
}

async function run(req: PrecisionRunRequest): Promise<PrecisionTimings> {
  const sessions = await openModelSessions(req.compiled, { provider: 'cpu', intraOpThreads: req.threads });
  try {
    const { spec } = req.compiled.manifest;
    const { size, newSequence } = soloCache(req.promptTokens + req.decodeTokens + 1);
    const runner = new ModelRunner(sessions, size);
    const { vocabSize } = spec;
    const prompt = Array.from({ length: req.promptTokens }, (_, i) => 3 + ((i * 7919) % (vocabSize - 3)));
    const timings: PrecisionTimings = { prefillMs: [], decodeStepMs: [] };
    // An untimed prefill first: a fresh process's first steps also pay one-time costs
    // (allocations, page faults, code tiering) that are not the model's speed.
    runner.step([{ tokens: prompt, cache: newSequence(), logits: 'last' }]);
    const cache = newSequence();
    let started = performance.now();
    let result = runner.step([{ tokens: prompt, cache, logits: 'last' }]);
    timings.prefillMs.push(performance.now() - started);
    if (req.allLogitsRows) {
      started = performance.now();
      runner.step([{ tokens: prompt, cache: newSequence(), logits: 'all' }]);
      timings.prefillAllRowsMs = [performance.now() - started];
    }
    for (let i = 0; i < req.decodeTokens; i++) {
      const next = argmax(result.logits);
      started = performance.now();
      result = runner.step([{ tokens: [next], cache, logits: 'last' }]);
      timings.decodeStepMs.push(performance.now() - started);
    }
    return timings;
  } finally {
    await sessions.release();
  }
}

process.once('message', (req: PrecisionRunRequest) => {
  run(req).then(
    (timings) => process.send?.(timings, () => process.exit(0)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
});
