// Checkpoint -> compiled model directory: ONNX graphs with external-data weights, the
// embedding table as raw f32, and a manifest. The directory is named by a content key
// (checkpoint fingerprint + options + compiler version), so an unchanged checkpoint is
// compiled once and reused on every later start, wherever it is stored. Weights stream
// tensor by tensor from the checkpoint into the graphs: at most one graph's weights are in
// memory at a time, never the whole model.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../kernels/onnx/graph-builder.ts';
import { WeightsFileWriter } from '../kernels/onnx/weights-file.ts';
import { buildAttentionCore } from '../kernels/ops/attention.ts';
import type { WeightPrecision } from '../kernels/ops/linear.ts';
import { CheckpointReader } from './checkpoint/safetensors.ts';
import { checkpointFingerprint } from './fingerprint.ts';
import { buildAttentionIn, buildAttentionOut, buildExpert, buildLmHead, readSwiglu, type ReadWeight } from './layer-graphs.ts';
import { loadModelSpec } from './registry.ts';
import { isMoe, type ModelSpec } from './spec.ts';

/** Bump when graph layouts change: old compiled directories are then not reused. */
const COMPILER_VERSION = 2;

export interface CompileOptions {
  modelDir: string;
  weights: WeightPrecision;
  /**
   * MatMulNBits accuracy_level for 4-bit weights: 4 (default) rounds activations to int8 per
   * block and is fast; 0 computes in fp32, exact to the dequantised weights but ~3x slower.
   */
  int4AccuracyLevel?: 0 | 4;
  /** Parent directory of compiled models; defaults to defaultCacheDir(). */
  cacheDir?: string;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface LayerGraphs {
  attnIn: string;
  attnOut: string;
  /** One graph per routed expert; empty for dense layers. */
  experts: string[];
}

export interface Manifest {
  compilerVersion: number;
  key: string;
  weights: WeightPrecision;
  spec: ModelSpec;
  attentionCore: string;
  layers: LayerGraphs[];
  lmHead: string;
  /** Raw little-endian f32 [vocabSize, hiddenSize]. */
  embeddings: string;
}

export interface CompiledModel {
  dir: string;
  manifest: Manifest;
  /** True when an earlier compile was reused. */
  reused: boolean;
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'moe-server');
}

export function compileKey(modelDir: string, weights: WeightPrecision, int4AccuracyLevel: number): string {
  const hash = createHash('sha256');
  const options = { weights, int4AccuracyLevel: weights === 'int4' ? int4AccuracyLevel : null };
  hash.update(JSON.stringify({ compiler: COMPILER_VERSION, options, checkpoint: checkpointFingerprint(modelDir) }));
  return hash.digest('hex').slice(0, 24);
}

export function compileModel(opts: CompileOptions): CompiledModel {
  const { spec, family } = loadModelSpec(opts.modelDir);
  const key = compileKey(opts.modelDir, opts.weights, opts.int4AccuracyLevel ?? 4);
  const outDir = join(opts.cacheDir ?? defaultCacheDir(), 'compiled', key);
  const manifestPath = join(outDir, 'manifest.json');
  if (existsSync(manifestPath)) {
    return { dir: outDir, manifest: JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest, reused: true };
  }
  // Build beside the final place and rename at the end: an interrupted compile never
  // leaves a directory that looks finished.
  const tmpDir = `${outDir}.tmp-${process.pid}`;
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true });
  const reader = CheckpointReader.open(opts.modelDir);
  try {
    const read: ReadWeight = (name, shape) => reader.readFloat32(name, shape);
    const manifest = writeGraphs(tmpDir, key, spec, family.weightNames(spec), read, opts);
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

type WeightNames = ReturnType<ReturnType<typeof loadModelSpec>['family']['weightNames']>;

function writeGraphs(dir: string, key: string, spec: ModelSpec, names: WeightNames, read: ReadWeight, opts: CompileOptions): Manifest {
  const linearOpts = { precision: opts.weights, int4AccuracyLevel: opts.int4AccuracyLevel ?? 4 };
  const total = 3 + spec.mlp.reduce((n, m) => n + 2 + (isMoe(m) ? m.numRoutedExperts : 0), 0);
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

  const attentionCore = emit('attention-core.onnx', (b) => buildAttentionCore(b, spec));
  const layers = names.layers.map((layerNames, i): LayerGraphs => {
    const prefix = `layer${String(i).padStart(3, '0')}`;
    const attnIn = emit(`${prefix}.attn-in.onnx`, (b) => buildAttentionIn(b, spec, layerNames, read, linearOpts));
    const attnOut = emit(`${prefix}.attn-out.onnx`, (b) => buildAttentionOut(b, spec, i, layerNames, read, linearOpts));
    const mlp = spec.mlp[i];
    const experts =
      layerNames.mlp.kind === 'moe' && isMoe(mlp)
        ? layerNames.mlp.experts.map((expertNames, j) =>
            emit(`${prefix}.expert${String(j).padStart(3, '0')}.onnx`, (b) =>
              buildExpert(b, spec, readSwiglu(read, expertNames, spec.hiddenSize, mlp.expertIntermediateSize), linearOpts),
            ),
          )
        : [];
    return { attnIn, attnOut, experts };
  });
  const lmHead = emit('lm-head.onnx', (b) => buildLmHead(b, spec, names.finalNorm, names.lmHead, read, linearOpts));
  return { compilerVersion: COMPILER_VERSION, key, weights: opts.weights, spec, attentionCore, layers, lmHead, embeddings };
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
