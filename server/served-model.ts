// The model the server serves: the engine (in its worker), the tokenizer and chat template
// on the main thread (prompts are rendered and counted before they reach the engine), and
// the id clients address it by.
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { defaultTensorParallel, type ExpertPlacement } from '../models/compile.ts';
import type { Device } from '../runtime/device/device-plan.ts';
import type { Engine, ExecutionInfo, KvCacheSettings, SchedulerLimits } from './engine/api.ts';
import { EngineClient } from './engine/client.ts';
import { describeModel, type ModelDescription } from './model-description.ts';
import { unavailable } from './openai/errors.ts';
import {
  DEFAULT_PARSER_SETTINGS,
  type ModelParsers,
  type ParserSettings,
  parserMarkup,
  resolveModelParsers,
} from './openai/model-parsers.ts';
import { TokenTexts } from './openai/logprobs.ts';
import { loadModelSpec } from '../models/registry.ts';
import { ChatTemplate, ChatTemplateError } from './tokenizer/chat-template.ts';
import { TextTokenizer, type TokenizerConfig } from './tokenizer/tokenizer.ts';

export interface ServedModel {
  /** The id in requests' `model` field and in /v1/models. */
  id: string;
  /** Unix seconds when the model became ready. */
  created: number;
  engine: Engine;
  tokenizer: TextTokenizer;
  tokenTexts: TokenTexts;
  /** Null when the checkpoint has none (or it does not parse: see chatTemplateProblem). */
  chatTemplate: ChatTemplate | null;
  chatTemplateProblem: string | null;
  /** The tool-call and reasoning parsers its outputs go through (--tool-call-parser, --reasoning-parser). */
  parsers: ModelParsers;
  /** Longest prompt + completion, in tokens. */
  maxModelLen: number;
  vocabSize: number;
  eosTokenIds: number[];
  /** Family, experts, routing and KV cache of the model, for /v1/models. */
  description: ModelDescription;
  /** Device, plan and precision the engine runs the model with. */
  execution: ExecutionInfo;
}

export interface LoadModelOptions {
  modelDir: string;
  weights: WeightPrecision;
  /** Default: the CPU. */
  device?: Device;
  /** Default: fused on CUDA, per-expert on the CPU (tests and benchmarks run the fused plan on the CPU too). */
  plan?: 'per-expert' | 'fused';
  /** Intra-op threads per session; 0 = one per core. */
  threads: number;
  /** Decode attention: the WebAssembly kernel (default) or ONNX Runtime's graphs. */
  attention?: 'wasm' | 'onnx';
  /** Tensor-parallel shards; 0 = defaultTensorParallel(). */
  tensorParallel: number;
  /** Routed experts split across the shards or replicated on each; default 'auto'. */
  expertPlacement?: ExpertPlacement | 'auto';
  int4BlockSize?: number;
  cacheDir?: string;
  maxModelLen?: number;
  kvCache?: KvCacheSettings;
  scheduler?: SchedulerLimits;
  /** Defaults to the model directory's name. */
  servedModelName?: string;
  /** Default: both auto. */
  parsers?: ParserSettings;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export async function loadServedModel(opts: LoadModelOptions): Promise<ServedModel> {
  const parserSettings = opts.parsers ?? DEFAULT_PARSER_SETTINGS;
  // The engine keeps the parsers' markup in its text: they are chosen before it starts.
  const textSpecialTokens = parserMarkup(modelParsers(opts.modelDir, parserSettings, loadChatTemplate(opts.modelDir).chatTemplate));
  const engine = await EngineClient.start(
    {
      modelDir: opts.modelDir,
      weights: opts.weights,
      cacheDir: opts.cacheDir,
      maxModelLen: opts.maxModelLen,
      kvCache: opts.kvCache,
      scheduler: opts.scheduler,
      session: { ...providerOf(opts.device), intraOpThreads: opts.threads || availableParallelism(), attention: opts.attention },
      tensorParallel: opts.tensorParallel || defaultTensorParallel(),
      expertPlacement: opts.expertPlacement,
      int4BlockSize: opts.int4BlockSize,
      ...(opts.plan ? { plan: opts.plan } : {}),
      textSpecialTokens,
    },
    opts.onProgress,
  );
  try {
    return serveModel(engine, opts.modelDir, opts.servedModelName, parserSettings);
  } catch (err) {
    await engine.close();
    throw err;
  }
}

/** The ONNX Runtime provider (and CUDA device) of a --device value. */
export function providerOf(device: Device = { kind: 'cpu' }): { provider: 'cpu' } | { provider: 'cuda'; deviceId: number } {
  return device.kind === 'cpu' ? { provider: 'cpu' } : { provider: 'cuda', deviceId: device.id };
}

/**
 * The served model around a started engine: the checkpoint's tokenizer and chat template
 * (read on the main thread), the id it is served under (default: the directory's name).
 */
export function serveModel(
  engine: Engine,
  modelDir: string,
  servedModelName?: string,
  parserSettings: ParserSettings = DEFAULT_PARSER_SETTINGS,
): ServedModel {
  const tokenizer = TextTokenizer.load(modelDir);
  const { chatTemplate, chatTemplateProblem } = loadChatTemplate(modelDir, tokenizer.config);
  const { spec, maxModelLen } = engine.info;
  return {
    id: servedModelName ?? basename(resolve(modelDir)),
    created: Math.floor(Date.now() / 1000),
    engine,
    tokenizer,
    tokenTexts: new TokenTexts(tokenizer),
    chatTemplate,
    chatTemplateProblem,
    parsers: resolveModelParsers(parserSettings, chatTemplate?.source ?? null, spec.modelType),
    maxModelLen,
    vocabSize: spec.vocabSize,
    eosTokenIds: spec.eosTokenIds,
    description: describeModel(spec),
    execution: engine.info.execution,
  };
}

/** The checkpoint's chat template, or why there is none. */
function loadChatTemplate(
  modelDir: string,
  config: TokenizerConfig = readTokenizerConfig(modelDir),
): { chatTemplate: ChatTemplate | null; chatTemplateProblem: string | null } {
  try {
    const chatTemplate = ChatTemplate.load(modelDir, config);
    const problem = 'the model has no chat template (tokenizer_config.json "chat_template"); use /v1/completions';
    return { chatTemplate, chatTemplateProblem: chatTemplate === null ? problem : null };
  } catch (err) {
    // A template we cannot parse should not stop completions from being served.
    if (!(err instanceof ChatTemplateError)) throw err;
    return { chatTemplate: null, chatTemplateProblem: err.message };
  }
}

function readTokenizerConfig(modelDir: string): TokenizerConfig {
  const file = join(modelDir, 'tokenizer_config.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as TokenizerConfig) : {};
}

/** The parsers of the model in modelDir; its family is a fallback (null when config.json does not parse: the engine says why). */
function modelParsers(modelDir: string, settings: ParserSettings, chatTemplate: ChatTemplate | null): ModelParsers {
  let family: string | null = null;
  try {
    family = loadModelSpec(modelDir).spec.modelType;
  } catch {
    family = null;
  }
  return resolveModelParsers(settings, chatTemplate?.source ?? null, family);
}

/**
 * The served model as routes see it while the server may still be loading: the HTTP side
 * listens (and /health answers 503) before the engine is ready.
 */
export class ModelSlot {
  private model: ServedModel | null = null;
  private failure: string | null = null;

  constructor(pending: Promise<ServedModel>) {
    pending.then(
      (model) => (this.model = model),
      (err: unknown) => (this.failure = err instanceof Error ? err.message : String(err)),
    );
  }

  /** The ready model, or null. */
  get ready(): ServedModel | null {
    return this.model;
  }

  /** The model, or a 503 saying why there is none yet (or any more). */
  get(): ServedModel {
    if (this.model === null) {
      throw this.failure === null
        ? unavailable('The model is still loading; retry shortly.', 'model_loading')
        : unavailable('The model failed to load.', 'model_load_failed');
    }
    if (!this.model.engine.isRunning) throw unavailable('The inference engine has stopped.', 'engine_stopped');
    return this.model;
  }
}

/** One line for the startup log: device, plan, precision and ONNX Runtime calls per decode step. */
export function describeExecution(e: ExecutionInfo): string {
  const calls = e.graphCallsPerDecodeStep;
  const notes = e.notes.map((note) => `; note: ${note}`).join('');
  return (
    `execution: device ${e.device}, ${e.plan} plan (${e.precision}); ONNX Runtime calls per decode step of one sequence: ` +
    `${calls.device} on the GPU, ${calls.cpu} on the CPU${notes}`
  );
}
