// `moe-server generate`: one prompt through the engine worker, text streamed to stdout,
// then the measured prefill and decode speeds.
import { availableParallelism } from 'node:os';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { defaultTensorParallel } from '../models/compile.ts';
import { EngineClient } from './engine/client.ts';
import { defaultSamplingParams } from './engine/api.ts';
import { progressPrinter } from './progress.ts';
import { describeExecution, providerOf } from './served-model.ts';
import type { Device } from '../runtime/device/device-plan.ts';

export interface GenerateOptions {
  modelDir: string;
  prompt: string;
  maxTokens: number;
  weights: WeightPrecision;
  /** Default: the CPU. */
  device?: Device;
  temperature: number;
  topK: number;
  topP: number;
  seed: number | null;
  /** Intra-op threads per session; 0 = all cores. */
  threads: number;
  /** Tensor-parallel shards; 0 = defaultTensorParallel(). */
  tensorParallel: number;
  cacheDir?: string;
}

export async function runGenerate(opts: GenerateOptions): Promise<number> {
  const compileProgress = progressPrinter('compiling graphs');
  const loadProgress = progressPrinter('loading sessions');
  const engine = await EngineClient.start(
    {
      modelDir: opts.modelDir,
      weights: opts.weights,
      cacheDir: opts.cacheDir,
      session: { ...providerOf(opts.device), intraOpThreads: opts.threads || availableParallelism() },
      tensorParallel: opts.tensorParallel || defaultTensorParallel(),
    },
    (stage, done, total) => (stage === 'compile' ? compileProgress : loadProgress)(done, total),
  );
  console.error(describeExecution(engine.info.execution));
  try {
    const request = {
      prompt: opts.prompt,
      maxTokens: opts.maxTokens,
      sampling: { ...defaultSamplingParams, temperature: opts.temperature, topK: opts.topK, topP: opts.topP },
      seed: opts.seed,
      stopTokenIds: engine.info.spec.eosTokenIds,
      ignoreEos: false,
      topLogprobs: null,
    };
    process.stdout.write(opts.prompt);
    for await (const event of engine.generate(request)) {
      if (event.type === 'token') process.stdout.write(event.text);
      if (event.type === 'error') {
        console.error(`\nerror: ${event.message}`);
        return 1;
      }
      if (event.type === 'finished') {
        process.stdout.write(`${event.text}\n\n`);
        const prefill = event.promptTokens / (event.prefillMs / 1000);
        const decodeSteps = event.completionTokens - 1;
        const decode = decodeSteps > 0 ? decodeSteps / (event.decodeMs / 1000) : NaN;
        console.log(
          `prompt ${event.promptTokens} tokens, generated ${event.completionTokens} (finish: ${event.finishReason})\n` +
            `prefill ${prefill.toFixed(1)} tok/s, decode ${decode.toFixed(1)} tok/s (${opts.weights} weights)`,
        );
      }
    }
    return 0;
  } finally {
    await engine.close();
  }
}
