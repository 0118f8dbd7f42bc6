// Checkpoint -> the graphs of the fused ("device") plan (runtime/device/): per decoder layer an
// attention-input graph (q/k/v rows; MLA: queries and cache rows) and one fused feed-forward
// block (graphs/moe-block.ts: o_proj, norm, router, gating, every routed and shared expert,
// residual), the attention core over the paged cache (run on the CPU, where the cache lives),
// and the LM head. No per-expert graphs: a GPU pays per call, so a layer's experts are one node.
// The directory is keyed like compile.ts's: checkpoint fingerprint + options + version.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAttentionIn, buildLmHead } from '../graphs/layer-graphs.ts';
import { buildMlaIn } from '../graphs/mla-graphs.ts';
import { buildFeedForwardBlock, type BlockPrecision } from '../graphs/moe-block.ts';
import { GraphBuilder } from '../graphs/onnx/graph-builder.ts';
import { WeightsFileWriter } from '../graphs/onnx/weights-file.ts';
import { buildAttentionCore, buildDecodeAttention } from '../graphs/ops/attention.ts';
import { gatingFromSpec } from '../graphs/ops/gating.ts';
import type { LinearOptions } from '../graphs/ops/linear.ts';
import { buildMlaAttentionCore } from '../graphs/ops/mla-attention.ts';
import { readLinear, type ReadWeight } from '../graphs/read-weights.ts';
import { CheckpointReader } from './checkpoint/safetensors.ts';
import { checkpointWeights } from './checkpoint/weight-source.ts';
import { defaultCacheDir } from './compile.ts';
import { isMlaNames, type ModelWeightNames } from './family.ts';
import { checkpointFingerprint } from './fingerprint.ts';
import { loadModelSpec } from './registry.ts';
import { isMoe, type ModelSpec } from './spec.ts';

/** Bump when the fused graphs' layout changes: old compiled directories are then not reused. */
const DEVICE_COMPILER_VERSION = 1;

export interface DeviceCompileOptions {
  modelDir: string;
  precision: BlockPrecision;
  /** Parent directory of compiled models; defaults to defaultCacheDir(). */
  cacheDir?: string;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface DeviceLayerGraphs {
  /** q/k/v rows of every head (MLA: the absorbed queries and the cache rows). */
  attnIn: string;
  /** o_proj + the feed-forward block + residual. */
  block: string;
  moe: boolean;
}

export interface DeviceManifest {
  compilerVersion: number;
  key: string;
  plan: 'fused';
  precision: BlockPrecision;
  spec: ModelSpec;
  /** Raw little-endian f32 [vocabSize, hiddenSize]. */
  embeddings: string;
  /** The attention core over the paged cache and (standard attention) the batched decode graph. */
  attention: { core: string; decode: string | null };
  layers: DeviceLayerGraphs[];
  lmHead: string;
}

export interface CompiledDeviceModel {
  dir: string;
  manifest: DeviceManifest;
  reused: boolean;
}

export function deviceCompileKey(modelDir: string, precision: BlockPrecision): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ compiler: DEVICE_COMPILER_VERSION, precision, checkpoint: checkpointFingerprint(modelDir) }));
  return hash.digest('hex').slice(0, 24);
}

export function compileDeviceModel(opts: DeviceCompileOptions): CompiledDeviceModel {
  const { spec, family } = loadModelSpec(opts.modelDir);
  const key = deviceCompileKey(opts.modelDir, opts.precision);
  const outDir = join(opts.cacheDir ?? defaultCacheDir(), 'compiled-device', key);
  const manifestPath = join(outDir, 'manifest.json');
  if (existsSync(manifestPath))
    return { dir: outDir, manifest: JSON.parse(readFileSync(manifestPath, 'utf8')) as DeviceManifest, reused: true };
  // Built beside its final place and renamed at the end, as compile.ts does.
  const tmpDir = `${outDir}.tmp-${process.pid}`;
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true });
  const reader = CheckpointReader.open(opts.modelDir);
  try {
    const names = family.weightNames(spec);
    const read = checkpointWeights(reader, spec, names, family.checkpointRenames);
    const manifest = writeDeviceGraphs(tmpDir, key, spec, names, read, opts);
    writeFileSync(join(tmpDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
    rmSync(outDir, { recursive: true, force: true });
    renameSync(tmpDir, outDir);
    return { dir: outDir, manifest, reused: false };
  } catch (err) {
    rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  } finally {
    reader.close();
  }
}

function writeDeviceGraphs(
  dir: string,
  key: string,
  spec: ModelSpec,
  names: ModelWeightNames,
  read: ReadWeight,
  opts: DeviceCompileOptions,
): DeviceManifest {
  const { precision } = opts;
  const linearOpts: LinearOptions = {
    precision: precision.projections === 'int4' ? 'int4' : 'fp32',
    int4AccuracyLevel: precision.int4AccuracyLevel,
  };
  const total = 2 + 2 * spec.numLayers + 2;
  let done = 0;
  const emit = (file: string, build: (b: GraphBuilder) => void): string => {
    writeGraph(dir, file, build);
    opts.onProgress?.(++done, total, file);
    return file;
  };
  const embeddings = 'embeddings.f32';
  const embed = read(names.embedTokens, [spec.vocabSize, spec.hiddenSize]);
  writeFileSync(join(dir, embeddings), new Uint8Array(embed.buffer, embed.byteOffset, embed.byteLength));
  opts.onProgress?.(++done, total, embeddings);
  const attention = attentionGraphs(spec, emit);
  const layers = names.layers.map((layerNames, i): DeviceLayerGraphs => {
    const prefix = `layer${String(i).padStart(3, '0')}`;
    const a = layerNames.attention;
    const attnIn = isMlaNames(a)
      ? emit(`${prefix}.mla-in.onnx`, (b) => buildMlaIn(b, spec, layerNames.inputNorm, a, read, linearOpts))
      : emit(`${prefix}.attn-in.onnx`, (b) => buildAttentionIn(b, spec, layerNames, read, linearOpts, [0, spec.numKvHeads]));
    const mlp = spec.mlp[i];
    const mlpNames = layerNames.mlp;
    const bias =
      mlpNames.kind === 'moe' && mlpNames.correctionBias !== undefined && isMoe(mlp)
        ? read(mlpNames.correctionBias, [mlp.numRoutedExperts])
        : undefined;
    const gating = isMoe(mlp) ? gatingFromSpec(mlp, bias) : null;
    const block = emit(`${prefix}.block.onnx`, (b) => buildFeedForwardBlock(b, spec, i, layerNames, read, precision, gating));
    return { attnIn, block, moe: isMoe(mlp) };
  });
  const norm = read(names.finalNorm, [spec.hiddenSize]);
  const head = readLinear(read, names.lmHead, spec.vocabSize, spec.hiddenSize);
  const lmHead = emit('lm-head.onnx', (b) => buildLmHead(b, spec, norm, head, [0, spec.vocabSize], linearOpts));
  return { compilerVersion: DEVICE_COMPILER_VERSION, key, plan: 'fused', precision, spec, embeddings, attention, layers, lmHead };
}

function attentionGraphs(spec: ModelSpec, emit: (file: string, build: (b: GraphBuilder) => void) => string): DeviceManifest['attention'] {
  const mla = spec.mla;
  if (mla) return { core: emit('attention-core.onnx', (b) => buildMlaAttentionCore(b, { numHeads: spec.numHeads, ...mla })), decode: null };
  const shape = { numHeads: spec.numHeads, numKvHeads: spec.numKvHeads, headDim: spec.headDim };
  return {
    core: emit('attention-core.onnx', (b) => buildAttentionCore(b, shape)),
    decode: emit('attention-decode.onnx', (b) => buildDecodeAttention(b, shape)),
  };
}

function writeGraph(dir: string, file: string, build: (b: GraphBuilder) => void): void {
  const weights = new WeightsFileWriter(join(dir, `${file}.data`));
  try {
    const b = new GraphBuilder(file, weights);
    build(b);
    writeFileSync(join(dir, file), b.toBytes());
  } finally {
    weights.close();
  }
}
