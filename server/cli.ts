// The `moe-server` command: subcommands serve, synthetic, compile, generate and bench.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { type WeightPrecision } from '../graphs/ops/linear.ts';
import { compileModel, defaultTensorParallel } from '../models/compile.ts';
import { SYNTHETIC_FAMILIES, writeSyntheticCheckpoint, type SyntheticSize } from '../models/synthetic.ts';
import { ConfigValueError, parseDevice, resolveConfig, serveArgOptions, settingsHelp } from './config.ts';
import { defaultModelDir, ensureDemoModel } from './demo-model.ts';
import { BATCH_USAGE, batchOptions, runBatchCommand } from './batch/batch-cli.ts';
import { DISTILL_USAGE, distillOptions, runDistillCommand } from './distill/distill-cli.ts';
import { MAX_PROMPT_TOP_K } from './engine/api.ts';
import { runGenerate } from './generate.ts';
import { progressPrinter } from './progress.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  run(values: Record<string, unknown>): Promise<number>;
}

const common: Options = { help: { type: 'boolean', short: 'h' } };

const commands: Record<string, Command> = {
  serve: {
    summary: 'serve the OpenAI-compatible HTTP API and WebSocket streaming (the demo model without --model)',
    usage:
      `moe-server serve [options]\n\nEvery option also reads an environment variable; a flag wins over its ` +
      `variable.\n\n${settingsHelp()}`,
    options: serveArgOptions(),
    async run(v) {
      const config = resolveConfig(v);
      // Loaded on demand: the other commands need no HTTP stack.
      const { runServer } = await import('./main.ts');
      return runServer(config);
    },
  },
  synthetic: {
    summary: 'write a random-weight Hugging Face checkpoint (config, safetensors, tokenizer)',
    usage:
      `moe-server synthetic --out DIR [--family deepseek|mixtral|qwen2_moe|qwen3_moe|olmoe|deepseek_v2|deepseek_v3] [--size ` +
      `tiny|bench] [--seed N] [--dtype bf16|f16|f32]`,
    options: {
      out: { type: 'string' },
      family: { type: 'string', default: 'deepseek' },
      size: { type: 'string', default: 'tiny' },
      seed: { type: 'string', default: '0' },
      dtype: { type: 'string', default: 'bf16' },
    },
    async run(v) {
      const out = requireString(v.out, '--out');
      const size = oneOf(v.size, ['tiny', 'bench'] as const, '--size') as SyntheticSize;
      const family = oneOf(v.family, SYNTHETIC_FAMILIES, '--family');
      const dtype = oneOf(v.dtype, ['bf16', 'f16', 'f32'] as const, '--dtype').toUpperCase() as 'BF16' | 'F16' | 'F32';
      const seed = integer(v.seed, '--seed');
      writeSyntheticCheckpoint({ outDir: out, family, size, seed, dtype, onProgress: progressPrinter('writing tensors') });
      console.log(`wrote a random-weight ${family} checkpoint (${size}, seed ${seed}) to ${out}`);
      return 0;
    },
  },
  compile: {
    summary: 'compile a checkpoint into ONNX graphs (reused while checkpoint and options are unchanged)',
    usage:
      `moe-server compile --model DIR [--weights fp32|int4] [--tensor-parallel N] [--expert-placement auto|split|replicate] ` +
      `[--cache-dir DIR]`,
    options: {
      model: { type: 'string' },
      weights: { type: 'string', default: 'int4' },
      'tensor-parallel': { type: 'string', default: '0' },
      'expert-placement': { type: 'string', default: 'auto' },
      'cache-dir': { type: 'string' },
    },
    async run(v) {
      const compiled = compileModel({
        modelDir: requireString(v.model, '--model'),
        weights: weightsOption(v.weights),
        tensorParallel: integer(v['tensor-parallel'], '--tensor-parallel') || defaultTensorParallel(),
        expertPlacement: oneOf(String(v['expert-placement']), ['auto', 'split', 'replicate'] as const, '--expert-placement'),
        cacheDir: optionalString(v['cache-dir']),
        onProgress: progressPrinter('compiling graphs'),
      });
      console.log(`${compiled.reused ? 'reused' : 'compiled'} ${compiled.dir}`);
      return 0;
    },
  },
  generate: {
    summary: 'generate text from a prompt and print prefill and decode speed',
    usage:
      `moe-server generate [--model DIR] --prompt TEXT [--max-tokens N] [--weights fp32|int4] [--device cpu|cuda[:N]]\n` +
      `    [--temperature T] [--top-k K] [--top-p P] [--seed N] [--threads N] [--tensor-parallel N] [--cache-dir DIR]\n` +
      `  Without --model, a tiny random-weight demo checkpoint is written once to ${defaultModelDir()} and used.`,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string', default: '64' },
      weights: { type: 'string', default: 'int4' },
      device: { type: 'string', default: 'cpu' },
      temperature: { type: 'string', default: '0' },
      'top-k': { type: 'string', default: '0' },
      'top-p': { type: 'string', default: '1' },
      seed: { type: 'string' },
      threads: { type: 'string', default: '0' },
      'tensor-parallel': { type: 'string', default: '0' },
      'cache-dir': { type: 'string' },
    },
    async run(v) {
      const modelDir = optionalString(v.model) ?? ensureDemoModel(progressPrinter('writing demo model'));
      return runGenerate({
        modelDir,
        prompt: requireString(v.prompt, '--prompt'),
        maxTokens: integer(v['max-tokens'], '--max-tokens'),
        weights: weightsOption(v.weights),
        device: parseDevice(String(v.device), '--device'),
        temperature: number(v.temperature, '--temperature'),
        topK: integer(v['top-k'], '--top-k'),
        topP: number(v['top-p'], '--top-p'),
        seed: v.seed === undefined ? null : integer(v.seed, '--seed'),
        threads: integer(v.threads, '--threads'),
        tensorParallel: integer(v['tensor-parallel'], '--tensor-parallel'),
        cacheDir: optionalString(v['cache-dir']),
      });
    },
  },
  batch: {
    summary: 'run an OpenAI Batch API file of chat/completions requests offline (resumable)',
    usage: BATCH_USAGE,
    options: batchOptions,
    async run(v) {
      const maxInFlight = v['max-in-flight'] === undefined ? undefined : integer(v['max-in-flight'], '--max-in-flight');
      if (maxInFlight !== undefined && maxInFlight < 1) throw new UsageError('--max-in-flight must be at least 1');
      return runBatchCommand(v, requireString(v.input, '--input'), requireString(v.output, '--output'), maxInFlight);
    },
  },
  distill: {
    summary: "export a teacher's token distributions (top-k, tail mass, router choices) over conversations as safetensors shards",
    usage: DISTILL_USAGE,
    options: distillOptions,
    async run(v) {
      const topK = integer(v['top-k'], '--top-k');
      if (topK < 0 || topK > MAX_PROMPT_TOP_K) throw new UsageError(`--top-k must be in 0..${MAX_PROMPT_TOP_K}, got ${topK}`);
      const temperature = number(v.temperature, '--temperature');
      if (!(temperature > 0)) throw new UsageError(`--temperature must be > 0, got ${temperature}`);
      const maxInFlight = v['max-in-flight'] === undefined ? null : integer(v['max-in-flight'], '--max-in-flight');
      if (maxInFlight !== null && maxInFlight < 1) throw new UsageError('--max-in-flight must be at least 1');
      const shardMib = number(v['shard-mib'], '--shard-mib');
      if (!(shardMib > 0)) throw new UsageError('--shard-mib must be > 0');
      const generate =
        v.generate === true
          ? {
              max_tokens: integer(v['gen-max-tokens'], '--gen-max-tokens'),
              temperature: number(v['gen-temperature'], '--gen-temperature'),
              top_p: number(v['gen-top-p'], '--gen-top-p'),
              top_k: integer(v['gen-top-k'], '--gen-top-k'),
              min_p: number(v['gen-min-p'], '--gen-min-p'),
              ...(v['gen-seed'] === undefined ? {} : { seed: integer(v['gen-seed'], '--gen-seed') }),
            }
          : null;
      return runDistillCommand(v, {
        input: requireString(v.input, '--input'),
        outDir: requireString(v.out, '--out'),
        topK,
        temperature,
        router: v.router === true,
        generate,
        maxInFlight,
        shardMib,
      });
    },
  },
  bench: {
    summary: 'benchmark prefill and decode speed against the memory-bandwidth roofline',
    usage:
      `moe-server bench [--model DIR] [--weights fp32,int4] [--prompt-tokens 512] [--decode-tokens 64] [--rounds 3] [--cache-dir DIR]\n` +
      `moe-server bench --families all|NAME,... [--weights int4] [--rounds 3] ...   one row per family at comparable size`,
    options: {
      model: { type: 'string' },
      families: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      weights: { type: 'string', default: 'fp32,int4' },
      'prompt-tokens': { type: 'string', default: '512' },
      'decode-tokens': { type: 'string', default: '64' },
      'cache-dir': { type: 'string' },
    },
    async run(v) {
      if (v.families !== undefined) {
        const { runFamilyBench } = await import('../bench/family-bench.ts');
        const names =
          String(v.families) === 'all'
            ? [...SYNTHETIC_FAMILIES]
            : String(v.families)
                .split(',')
                .map((f) => oneOf(f, SYNTHETIC_FAMILIES, '--families'));
        return runFamilyBench({
          families: names,
          weights: weightsOption(String(v.weights).includes(',') ? 'int4' : v.weights),
          promptTokens: integer(v['prompt-tokens'], '--prompt-tokens'),
          decodeTokens: integer(v['decode-tokens'], '--decode-tokens'),
          rounds: integer(v.rounds, '--rounds'),
          cacheDir: optionalString(v['cache-dir']),
        });
      }
      const { runModelBench } = await import('../bench/model-bench.ts');
      return runModelBench({
        modelDir: optionalString(v.model),
        weights: String(v.weights).split(',').map(weightsOption),
        promptTokens: integer(v['prompt-tokens'], '--prompt-tokens'),
        decodeTokens: integer(v['decode-tokens'], '--decode-tokens'),
        rounds: integer(v.rounds, '--rounds'),
        cacheDir: optionalString(v['cache-dir']),
      });
    },
  },
};

function topLevelHelp(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return (
    `Usage: moe-server <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun "moe-server <command> --help" for a command's ` +
    `options.`
  );
}

export class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(topLevelHelp());
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    console.error(`unknown command "${name}"\n\n${topLevelHelp()}`);
    return 2;
  }
  try {
    const { values } = parseArgs({ args: rest, options: { ...common, ...command.options }, strict: true, allowPositionals: false });
    if (values.help) {
      console.log(`Usage: ${command.usage}\n\n${command.summary}`);
      return 0;
    }
    return await command.run(values);
  } catch (err) {
    const usage = err instanceof UsageError || err instanceof ConfigValueError || (err instanceof TypeError && 'code' in err);
    console.error(`moe-server ${name}: ${err instanceof Error ? err.message : String(err)}`);
    if (usage) console.error(`Usage: ${command.usage}`);
    return usage ? 2 : 1;
  }
}

function requireString(v: unknown, flag: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`${flag} is required`);
  return v;
}

function optionalString(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function number(v: unknown, flag: string): number {
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got "${String(v)}"`);
  return n;
}

function integer(v: unknown, flag: string): number {
  const n = number(v, flag);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${flag} must be an integer, got "${String(v)}"`);
  return n;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], flag: string): T {
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  throw new UsageError(`${flag} must be one of ${allowed.join(', ')}, got "${String(v)}"`);
}

function weightsOption(v: unknown): WeightPrecision {
  return oneOf(v, ['fp32', 'int4'] as const, '--weights');
}
