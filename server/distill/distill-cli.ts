// `moe-server distill --input conversations.jsonl --out DIR [options] [engine settings]`: flags and usage.
import { ENGINE_SETTINGS, OFFLINE_DEFAULTS, resolveConfig, serveArgOptions, settingsHelp, type ServerConfig } from '../config.ts';
import { MAX_PROMPT_TOP_K } from '../engine/api.ts';
import { jobProgressPrinter } from '../progress.ts';

export const DISTILL_USAGE =
  `moe-server distill --model DIR --input conversations.jsonl --out DIR [--top-k K] [--temperature T] [--router]\n` +
  `    [--generate [--gen-max-tokens N] [--gen-temperature T] [--gen-top-p P] [--gen-top-k K] [--gen-min-p P] [--gen-seed N]]\n` +
  `    [--max-in-flight N] [--shard-mib MIB] [engine settings]\n\n` +
  `Scores conversations ({"id"?, "messages": [...]} per line) teacher-forced through the chat template and writes, for every ` +
  `response token (the assistant turns), its logprob, the top K alternatives and the log of the probability outside them, ` +
  `as safetensors shards plus manifest.json in --out (docs/distillation.md). Rerun the same command to resume.\n\n` +
  `  --top-k K\n      alternatives per response token, 0..${MAX_PROMPT_TOP_K}; default 64\n` +
  `  --temperature T\n      the teacher's logits are divided by T before the log-softmax and the cut; default 1 (its raw distribution)\n` +
  `  --router\n      also store every input token's chosen experts and gate weights per MoE layer (the prefix cache is not used)\n` +
  `  --generate\n      first let the model answer each conversation (which then ends with a user turn) and score the answer; a line ` +
  `may carry chat completion fields (max_tokens, temperature, seed, stop...), over the --gen-* defaults\n` +
  `  --gen-max-tokens N (default 512), --gen-temperature T (1), --gen-top-p P (1), --gen-top-k K (0 = off), --gen-min-p P (0), --gen-seed N\n` +
  `  --max-in-flight N\n      conversations in the engine at once; default 2 x --max-num-seqs\n` +
  `  --shard-mib MIB\n      shard size; default 256\n\n` +
  `Engine settings (as for serve; each also reads its environment variable):\n${settingsHelp(ENGINE_SETTINGS, OFFLINE_DEFAULTS)}`;

export const distillOptions = {
  ...serveArgOptions(ENGINE_SETTINGS),
  input: { type: 'string' as const },
  out: { type: 'string' as const },
  'top-k': { type: 'string' as const, default: '64' },
  temperature: { type: 'string' as const, default: '1' },
  router: { type: 'boolean' as const, default: false },
  generate: { type: 'boolean' as const, default: false },
  'gen-max-tokens': { type: 'string' as const, default: '512' },
  'gen-temperature': { type: 'string' as const, default: '1' },
  'gen-top-p': { type: 'string' as const, default: '1' },
  'gen-top-k': { type: 'string' as const, default: '0' },
  'gen-min-p': { type: 'string' as const, default: '0' },
  'gen-seed': { type: 'string' as const },
  'max-in-flight': { type: 'string' as const },
  'shard-mib': { type: 'string' as const, default: '256' },
};

export interface DistillFlags {
  input: string;
  outDir: string;
  topK: number;
  temperature: number;
  router: boolean;
  generate: Record<string, unknown> | null;
  maxInFlight: number | null;
  shardMib: number;
}

export async function runDistillCommand(values: Record<string, unknown>, flags: DistillFlags): Promise<number> {
  const config: ServerConfig = resolveConfig(values, process.env, OFFLINE_DEFAULTS);
  const [{ runOfflineJob }, { runDistillJob }] = await Promise.all([import('../jobs/job-command.ts'), import('./distill-job.ts')]);
  const { defaultModelDir } = await import('../demo-model.ts');
  return runOfflineJob(config, async (model, signal) => {
    const summary = await runDistillJob(model, {
      input: flags.input,
      outDir: flags.outDir,
      modelDir: config.model ?? defaultModelDir(config.cacheDir ?? undefined),
      topK: flags.topK,
      temperature: flags.temperature,
      router: flags.router,
      generate: flags.generate,
      maxInFlight: flags.maxInFlight ?? 2 * config.maxNumSeqs,
      maxShardBytes: flags.shardMib * 1024 * 1024,
      modelInfo: { weights: config.weights },
      signal,
      progress: jobProgressPrinter('distill', 'conversations'),
    });
    const rate = (n: number): string => (n / Math.max(summary.seconds, 1e-9)).toFixed(1);
    console.error(
      `distill: ${summary.numScored} conversations scored (${summary.inputTokens} tokens, ${summary.responseTokens} response tokens; ` +
        `${rate(summary.inputTokens)} scored tok/s), ${summary.numErrors} errors (errors.jsonl), ${summary.numSkipped} already done` +
        (summary.generatedTokens > 0 ? `, ${summary.generatedTokens} tokens generated` : '') +
        ` in ${summary.seconds.toFixed(1)} s` +
        (summary.stoppedBy === null ? '' : `; stopped (${summary.stoppedBy}): ${summary.numCancelled} cancelled, rerun to finish`),
    );
    return summary.stoppedBy === null ? 0 : 1;
  });
}
