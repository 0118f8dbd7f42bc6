// moe-server's side of the correctness guard, in a child process: greedy decoding of a prompt
// through the model runner (the engine's own forward step), with each step's most likely
// tokens and their exact log-probabilities.
import type { CompiledModel } from '../../models/compile.ts';
import { ModelRunner } from '../../runtime/model-runner.ts';
import { openModelSessions } from '../../runtime/model-sessions.ts';
import { argmax } from '../../server/engine/sampler.ts';
import { soloCache } from '../solo-cache.ts';
import { answerOnce } from './child.ts';
import type { GreedyStep } from './llama-run.ts';

export interface MoeGreedyRequest {
  compiled: CompiledModel;
  threads: number;
  prompt: number[];
  steps: number;
  topK: number;
}

/** The k largest log-softmax values of `logits`, largest first. */
export function topLogprobs(logits: Float32Array, k: number): Array<[number, number]> {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  const order = Array.from({ length: logits.length }, (_, i) => i)
    .sort((a, b) => logits[b] - logits[a])
    .slice(0, k);
  return order.map((i) => [i, logits[i] - logZ]);
}

async function run(req: MoeGreedyRequest): Promise<GreedyStep[]> {
  const sessions = await openModelSessions(req.compiled, { provider: 'cpu', intraOpThreads: req.threads });
  try {
    const { size, newSequence } = soloCache(req.prompt.length + req.steps + 1);
    const runner = new ModelRunner(sessions, size);
    const cache = newSequence();
    const steps: GreedyStep[] = [];
    let result = runner.step([{ tokens: req.prompt, cache, logits: 'last' }]);
    while (steps.length < req.steps) {
      const token = argmax(result.logits);
      steps.push({ token, top: topLogprobs(result.logits, req.topK) });
      if (steps.length < req.steps) result = runner.step([{ tokens: [token], cache, logits: 'last' }]);
    }
    return steps;
  } finally {
    await sessions.release();
  }
}

answerOnce(run);
