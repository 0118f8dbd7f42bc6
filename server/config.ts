// The server's settings in one table: each has a flag, an environment variable and a default.
// Precedence: flag, then MOE_SERVER_* variable, then default. `moe-server serve --help`
// prints this table, and the docs list the same rows.
import type { ParseArgsConfig } from 'node:util';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import type { Device } from '../runtime/device/device-plan.ts';
import { DEFAULT_KV_CACHE, DEFAULT_SCHEDULER_LIMITS } from './engine/api.ts';
import {
  REASONING_PARSER_SETTINGS,
  type ReasoningParserSetting,
  TOOL_PARSER_SETTINGS,
  type ToolParserSetting,
} from './openai/model-parsers.ts';
import { apiKeys, ConfigValueError, hostNames, integerIn, oneOf, optionalText, origins, parseDevice, text } from './config-values.ts';

export { ConfigValueError, parseDevice } from './config-values.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const EXPERT_METRICS = ['all', 'layer'] as const;
/** `all`: per-(layer, expert) counters and per-layer summaries; `layer`: per-layer summaries only. */
export type ExpertMetricsLevel = (typeof EXPERT_METRICS)[number];

export interface ServerConfig {
  /** Hugging Face checkpoint directory; null serves the random-weight demo model. */
  model: string | null;
  weights: WeightPrecision;
  /** Where the model runs: the CPU (per-expert plan) or a CUDA device (fused plan). */
  device: Device;
  host: string;
  port: number;
  /** Accepted bearer tokens; empty = no authentication. */
  apiKeys: string[];
  /** Web origins whose pages may call the server besides its own ('*': any); empty = none. */
  allowedOrigins: string[];
  /** Host names answered besides loopback ones ('*': any); on a non-loopback host, empty = any (hosts.ts). */
  allowedHosts: string[];
  /** Requests admitted at once (generating or waiting); more get 429. */
  maxQueue: number;
  maxBodyBytes: number;
  /** The `model` id clients use; null = the model directory's name. */
  servedModelName: string | null;
  /** How the model's tool calls are parsed: auto (from its chat template and family), none, or a parser. */
  toolCallParser: ToolParserSetting;
  /** How its <think> reasoning is split from the answer: auto, none, or a parser. */
  reasoningParser: ReasoningParserSetting;
  /** Intra-op threads per ONNX Runtime session; 0 = one per core. */
  threads: number;
  /** Tensor-parallel shards for the MLPs and LM head; 0 = min(2, cores). */
  tensorParallel: number;
  /** Decode attention by the WebAssembly kernel or by ONNX Runtime's graphs. */
  attention: 'wasm' | 'onnx';
  /** Routed experts split across the tensor-parallel shards or replicated on each. */
  expertPlacement: 'auto' | 'split' | 'replicate';
  /** Weights sharing one 4-bit scale (int4). */
  int4BlockSize: 32 | 64 | 128;
  /** Where compiled models and the demo checkpoint live; null = the default cache directory. */
  cacheDir: string | null;
  /** Longest prompt + completion served; null = the model's max_position_embeddings. */
  maxModelLen: number | null;
  /** Sequences decoded together in one step (the running set). */
  maxNumSeqs: number;
  /** Tokens per model step: decodes plus chunks of prompts being read. */
  maxBatchTokens: number;
  /** While streams decode, prompt chunks are cut to keep a step within this many ms; 0 = off. */
  maxStepMs: number;
  /** Tokens the KV cache pool holds; null = as many as kvCacheMib allows. */
  kvCacheTokens: number | null;
  kvCacheMib: number;
  kvBlockSize: number;
  /** Seconds running requests get to finish after SIGTERM before they are cancelled. */
  shutdownTimeout: number;
  /** Tokens per MoE layer in the sliding window of the expert-load statistics. */
  expertLoadWindow: number;
  expertMetrics: ExpertMetricsLevel;
  logLevel: LogLevel;
}

interface Setting<T> {
  flag: string;
  env: string;
  metavar: string;
  help: string;
  defaultValue: T;
  /** How the default reads in --help when it is not simply the value. */
  defaultText?: string;
  /** Repeatable flag; the environment variable takes a comma-separated list. */
  list?: boolean;
  parse(raw: string, source: string): T;
}

type Settings = { [K in keyof ServerConfig]: Setting<ServerConfig[K]> };

export const SETTINGS: Settings = {
  model: {
    flag: 'model',
    env: 'MOE_SERVER_MODEL',
    metavar: 'DIR',
    defaultValue: null,
    parse: optionalText,
    defaultText: 'demo model',
    help:
      'Hugging Face checkpoint directory (config.json, safetensors, tokenizer). Without it a tiny random-weight demo checkpoint is ' +
      'written once to the cache directory and served.',
  },
  weights: {
    flag: 'weights',
    env: 'MOE_SERVER_WEIGHTS',
    metavar: 'fp32|int4',
    defaultValue: 'int4',
    parse: oneOf(['fp32', 'int4'] as const),
    help: 'Weight precision of the compiled model.',
  },
  device: {
    flag: 'device',
    env: 'MOE_SERVER_DEVICE',
    metavar: 'cpu|cuda[:N]',
    defaultValue: { kind: 'cpu' },
    parse: parseDevice,
    defaultText: 'cpu',
    help:
      'Where the model runs. cpu: one small graph per chosen expert on the CPU cores. cuda or cuda:N: CUDA device N (default 0), ' +
      "each layer's attention projections and whole MoE block (router, gating, all experts) as one float16 graph call each, the " +
      "attention over the KV cache on the CPU. Needs ONNX Runtime's CUDA provider (docs/gpu.md); startup fails if it does not load.",
  },
  attention: {
    flag: 'attention',
    env: 'MOE_SERVER_ATTENTION',
    metavar: 'wasm|onnx',
    defaultValue: 'wasm',
    parse: oneOf(['wasm', 'onnx'] as const),
    help:
      'Who attends over the KV cache for decoding tokens: the WebAssembly kernel reading blocks in place, or ONNX Runtime graphs ' +
      '(which gather a copy first). Prompts always use ONNX Runtime.',
  },
  host: {
    flag: 'host',
    env: 'MOE_SERVER_HOST',
    metavar: 'ADDR',
    defaultValue: '127.0.0.1',
    parse: text,
    help: 'Address to listen on (0.0.0.0 for all interfaces).',
  },
  port: {
    flag: 'port',
    env: 'MOE_SERVER_PORT',
    metavar: 'N',
    defaultValue: 8000,
    parse: integerIn(0, 65535),
    help: 'TCP port (0 picks a free one).',
  },
  apiKeys: {
    flag: 'api-key',
    env: 'MOE_SERVER_API_KEYS',
    metavar: 'KEY',
    defaultValue: [],
    parse: apiKeys,
    list: true,
    defaultText: 'none (no authentication)',
    help: 'Accepted API key (Authorization: Bearer KEY). Repeat the flag for several; the variable takes a comma-separated list.',
  },
  allowedOrigins: {
    flag: 'allowed-origins',
    env: 'MOE_SERVER_ALLOWED_ORIGINS',
    metavar: 'ORIGIN',
    defaultValue: [],
    parse: origins,
    list: true,
    defaultText: "none (only the server's own pages)",
    help:
      'Web origins (scheme://host[:port]) whose pages may call the server, with CORS; * allows any. Requests that carry another ' +
      'Origin header are refused with 403; clients that send none (curl, SDKs) are unaffected. Repeat the flag or give a ' +
      'comma-separated list.',
  },
  allowedHosts: {
    flag: 'allowed-hosts',
    env: 'MOE_SERVER_ALLOWED_HOSTS',
    metavar: 'NAME',
    defaultValue: [],
    parse: hostNames,
    list: true,
    defaultText: 'none: on a loopback --host only loopback names (localhost, 127.x.x.x, [::1]); on another, any',
    help:
      'Host names the server answers to besides loopback ones, against DNS rebinding: a request whose Host header names another ' +
      'is refused with 403. On a loopback --host the check is on; on another it is off unless names are listed. * allows any. ' +
      'Repeat the flag or give a comma-separated list.',
  },
  maxQueue: {
    flag: 'max-queue',
    env: 'MOE_SERVER_MAX_QUEUE',
    metavar: 'N',
    defaultValue: 256,
    parse: integerIn(1, 1_000_000),
    help: 'Generation requests admitted at once (running or waiting in the engine); beyond it requests get 429 with Retry-After.',
  },
  maxBodyBytes: {
    flag: 'max-body-bytes',
    env: 'MOE_SERVER_MAX_BODY_BYTES',
    metavar: 'N',
    defaultValue: 4 * 1024 * 1024,
    parse: integerIn(1024, 1024 ** 3),
    help: 'Largest request body (and WebSocket message) accepted; larger ones get 413.',
  },
  servedModelName: {
    flag: 'served-model-name',
    env: 'MOE_SERVER_SERVED_MODEL_NAME',
    metavar: 'NAME',
    defaultValue: null,
    parse: optionalText,
    defaultText: "the model directory's name",
    help: 'The model id clients send in "model" and see in /v1/models.',
  },
  toolCallParser: {
    flag: 'tool-call-parser',
    env: 'MOE_SERVER_TOOL_CALL_PARSER',
    metavar: TOOL_PARSER_SETTINGS.join('|'),
    defaultValue: 'auto',
    parse: oneOf(TOOL_PARSER_SETTINGS),
    help:
      "How the model's tool calls are read from its output (docs/api.md#tool-calling). auto: from the markup its chat template " +
      'writes (DeepSeek-V3/V3.1, Hermes/Qwen <tool_call>, Mistral [TOOL_CALLS]), else from its family; none: requests with tools ' +
      'are refused.',
  },
  reasoningParser: {
    flag: 'reasoning-parser',
    env: 'MOE_SERVER_REASONING_PARSER',
    metavar: REASONING_PARSER_SETTINGS.join('|'),
    defaultValue: 'auto',
    parse: oneOf(REASONING_PARSER_SETTINGS),
    help:
      'How <think>...</think> reasoning is split from the answer into reasoning_content. auto: on when the chat template writes ' +
      '<think> (Qwen3, DeepSeek-R1); none: all output is content.',
  },
  threads: {
    flag: 'threads',
    env: 'MOE_SERVER_THREADS',
    metavar: 'N',
    defaultValue: 0,
    parse: integerIn(0, 1024),
    help: 'ONNX Runtime intra-op threads; 0 = one per core.',
  },
  tensorParallel: {
    flag: 'tensor-parallel',
    env: 'MOE_SERVER_TENSOR_PARALLEL',
    metavar: 'N',
    defaultValue: 0,
    parse: integerIn(0, 64),
    defaultText: '0 (= min(2, cores))',
    help: 'Threads the MLPs, experts and LM head are split over, each running its slice of every weight (tensor parallelism).',
  },
  expertPlacement: {
    flag: 'expert-placement',
    env: 'MOE_SERVER_EXPERT_PLACEMENT',
    metavar: 'auto|split|replicate',
    defaultValue: 'auto',
    parse: oneOf(['auto', 'split', 'replicate'] as const),
    help:
      'Routed experts on the tensor-parallel shards: a slice of every expert on each (split), or every expert whole on each, the ' +
      "chosen ones dealt out (replicate: faster, the experts' memory once per shard). " +
      'auto replicates when the copies fit in an eighth of the memory.',
  },
  int4BlockSize: {
    flag: 'int4-block-size',
    env: 'MOE_SERVER_INT4_BLOCK_SIZE',
    metavar: '32|64|128',
    defaultValue: 64,
    parse: (raw: string, source: string) => Number(oneOf(['32', '64', '128'] as const)(raw, source)) as 32 | 64 | 128,
    help:
      'int4: weights sharing one scale. 64 (4.5 bits a weight, as llama.cpp Q4_0) keeps the server within 1.2x the compiled bytes; ' +
      '32 is a little more exact and holds 12% more; 128 a little less exact and holds 5% less.',
  },
  cacheDir: {
    flag: 'cache-dir',
    env: 'MOE_SERVER_CACHE_DIR',
    metavar: 'DIR',
    defaultValue: null,
    parse: optionalText,
    defaultText: '$XDG_CACHE_HOME/moe-server or ~/.cache/moe-server',
    help: 'Where compiled models and the demo checkpoint are kept.',
  },
  maxModelLen: {
    flag: 'max-model-len',
    env: 'MOE_SERVER_MAX_MODEL_LEN',
    metavar: 'N',
    defaultValue: null,
    parse: integerIn(2, 10_000_000),
    defaultText: "the model's max_position_embeddings",
    help: "Longest prompt + completion in tokens (capped at the model's own limit).",
  },
  maxNumSeqs: {
    flag: 'max-num-seqs',
    env: 'MOE_SERVER_MAX_NUM_SEQS',
    metavar: 'N',
    defaultValue: DEFAULT_SCHEDULER_LIMITS.maxNumSeqs,
    parse: integerIn(1, 4096),
    help:
      'Most sequences in the running set: each step decodes all of them together; more requests wait their turn (first come, first ' +
      'served).',
  },
  maxBatchTokens: {
    flag: 'max-batch-tokens',
    env: 'MOE_SERVER_MAX_BATCH_TOKENS',
    metavar: 'N',
    defaultValue: DEFAULT_SCHEDULER_LIMITS.maxBatchTokens,
    parse: integerIn(1, 1_000_000),
    help:
      'Token budget of one model step, at least --max-num-seqs. Decodes come first; prompts are read in chunks in what is left, so ' +
      'a long prompt never stalls running streams for long.',
  },
  maxStepMs: {
    flag: 'max-step-ms',
    env: 'MOE_SERVER_MAX_STEP_MS',
    metavar: 'MS',
    // The engine alone has no budget (tests and the runner's benchmarks see every chunk whole);
    // a server does: bench/RESULTS.md (2026-12-03) has the measurement behind 200.
    defaultValue: 200,
    parse: integerIn(0, 600_000),
    help:
      'While sequences decode, cut prompt chunks so that a step is predicted to take at most this long (learnt from the steps ' +
      'run so far; at least 16 prompt tokens a step): bounds the inter-token latency that arriving prompts add. 0 = no time budget.',
  },
  kvCacheTokens: {
    flag: 'kv-cache-tokens',
    env: 'MOE_SERVER_KV_CACHE_TOKENS',
    metavar: 'N',
    defaultValue: null,
    parse: integerIn(1, 1_000_000_000),
    defaultText: 'as many as --kv-cache-mib holds',
    help:
      'Tokens the KV cache holds across all sequences. When it is full the newest sequence is preempted and recomputed later; the ' +
      'context length is capped at it.',
  },
  kvCacheMib: {
    flag: 'kv-cache-mib',
    env: 'MOE_SERVER_KV_CACHE_MIB',
    metavar: 'MIB',
    defaultValue: DEFAULT_KV_CACHE.memoryMib,
    parse: integerIn(1, 1_048_576),
    help: 'Memory budget of the KV cache when --kv-cache-tokens is not given (never more than --max-num-seqs full contexts).',
  },
  kvBlockSize: {
    flag: 'kv-block-size',
    env: 'MOE_SERVER_KV_BLOCK_SIZE',
    metavar: 'N',
    defaultValue: DEFAULT_KV_CACHE.blockSize,
    parse: integerIn(1, 4096),
    help: 'Tokens per KV cache block: the unit of allocation and of prefix reuse.',
  },
  shutdownTimeout: {
    flag: 'shutdown-timeout',
    env: 'MOE_SERVER_SHUTDOWN_TIMEOUT',
    metavar: 'SECONDS',
    defaultValue: 30,
    parse: integerIn(0, 86_400),
    help: 'After SIGTERM or SIGINT, how long running requests may finish before they are cancelled and the server exits.',
  },
  expertLoadWindow: {
    flag: 'expert-load-window',
    env: 'MOE_SERVER_EXPERT_LOAD_WINDOW',
    metavar: 'N',
    defaultValue: 1024,
    parse: integerIn(1, 10_000_000),
    help: 'Most recent routed tokens per MoE layer over which /metrics, /v1/experts/stats and /dashboard compute expert-load balance.',
  },
  expertMetrics: {
    flag: 'expert-metrics',
    env: 'MOE_SERVER_EXPERT_METRICS',
    metavar: 'all|layer',
    defaultValue: 'all',
    parse: oneOf(EXPERT_METRICS),
    help:
      'all: per-(layer, expert) routed-token counters in /metrics (MoE layers x experts series) plus per-layer summaries; layer: ' +
      'per-layer summaries only (for very large models).',
  },
  logLevel: {
    flag: 'log-level',
    env: 'MOE_SERVER_LOG_LEVEL',
    metavar: 'LEVEL',
    defaultValue: 'info',
    parse: oneOf(LOG_LEVELS),
    help: `Log level: ${LOG_LEVELS.join(', ')}.`,
  },
};

const KEYS = Object.keys(SETTINGS) as Array<keyof ServerConfig>;

/** The settings of the model and engine alone: what offline jobs (batch, distill) take of serve's. */
export const ENGINE_SETTINGS: ReadonlyArray<keyof ServerConfig> = [
  'model',
  'weights',
  'device',
  'attention',
  'servedModelName',
  'toolCallParser',
  'reasoningParser',
  'threads',
  'tensorParallel',
  'expertPlacement',
  'cacheDir',
  'maxModelLen',
  'maxNumSeqs',
  'maxBatchTokens',
  'maxStepMs',
  'kvCacheTokens',
  'kvCacheMib',
  'kvBlockSize',
];

/**
 * What offline jobs (`batch`, `distill`) default to instead: nobody streams their tokens, so
 * the step time budget, which trades throughput for a serving client's inter-token latency,
 * is off unless asked for.
 */
export const OFFLINE_DEFAULTS: DefaultOverrides = { maxStepMs: 0 };

/** node:util parseArgs options for the serve command (or the given settings of it). */
export function serveArgOptions(keys: ReadonlyArray<keyof ServerConfig> = KEYS): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(keys.map((key) => [SETTINGS[key].flag, { type: 'string' as const, multiple: SETTINGS[key].list === true }]));
}

/** parseArgs' values: a string, or strings for a repeatable flag. */
type FlagValues = Record<string, unknown>;

/** Defaults a command sets over the table's (offline jobs: OFFLINE_DEFAULTS). */
export type DefaultOverrides = Partial<ServerConfig>;

function resolveOne<K extends keyof ServerConfig>(
  key: K,
  flags: FlagValues,
  env: NodeJS.ProcessEnv,
  defaults: DefaultOverrides,
): ServerConfig[K] {
  const setting: Setting<ServerConfig[K]> = SETTINGS[key];
  const flagValue = flags[setting.flag];
  const values: unknown[] = Array.isArray(flagValue) ? flagValue : flagValue === undefined ? [] : [flagValue];
  const raws = values.map(String);
  if (raws.length > 0) {
    const parsed = raws.map((raw) => setting.parse(raw, `--${setting.flag}`));
    // Only list settings repeat; each of their values is an array, so the lists concatenate.
    return setting.list ? (parsed.flat() as unknown as ServerConfig[K]) : parsed[parsed.length - 1];
  }
  const envValue = env[setting.env];
  if (envValue !== undefined && envValue !== '') return setting.parse(envValue, setting.env);
  return key in defaults ? (defaults[key] as ServerConfig[K]) : setting.defaultValue;
}

/** Flags (parsed by parseArgs) over environment variables over `defaults` over the table's defaults. */
export function resolveConfig(flags: FlagValues, env: NodeJS.ProcessEnv = process.env, defaults: DefaultOverrides = {}): ServerConfig {
  const entries = KEYS.map((key) => [key, resolveOne(key, flags, env, defaults)]);
  const config = Object.fromEntries(entries) as ServerConfig;
  // Each running sequence decodes one token per step, first come first: with fewer tokens per
  // step than running sequences, the newest would wait for older ones to finish.
  if (config.maxBatchTokens < config.maxNumSeqs) {
    throw new ConfigValueError(
      `--max-batch-tokens (${config.maxBatchTokens}) must be at least --max-num-seqs (${config.maxNumSeqs}): every running sequence ` +
        `needs a token in each step`,
    );
  }
  return config;
}

/** The settings table for --help: flag, variable, default and what it does. */
export function settingsHelp(keys: ReadonlyArray<keyof ServerConfig> = KEYS, defaults: DefaultOverrides = {}): string {
  return keys
    .map((key) => {
      const s: Setting<unknown> = SETTINGS[key];
      const shown = key in defaults ? JSON.stringify(defaults[key]) : (s.defaultText ?? JSON.stringify(s.defaultValue));
      return `  --${s.flag} ${s.metavar}${s.list ? ' (repeatable)' : ''}\n      ${s.help}\n      env ${s.env}; default ${shown}`;
    })
    .join('\n');
}
