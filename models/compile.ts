// Checkpoint -> compiled model directory: ONNX graphs with external-data weights, the
// embedding table as raw f32, and a manifest. The directory is named by a content key
// (checkpoint fingerprint + options + compiler version), so an unchanged checkpoint is
// compiled once and reused on every later start, wherever it is stored. Weights stream
// tensor by tensor from the checkpoint into the graphs: at most one graph's weights are in
// memory at a time, never the whole model.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../graphs/onnx/graph-builder.ts';
import { WeightsFileWriter } from '../graphs/onnx/weights-file.ts';
import { buildAttentionCore, buildDecodeAttention } from '../graphs/ops/attention.ts';
import { buildMlaAttentionCore } from '../graphs/ops/mla-attention.ts';
import { buildMlaIn } from '../graphs/mla-graphs.ts';
import { compileTmpDir, publishCompiled } from './compile-publish.ts';
import { isMlaNames } from './family.ts';
import { usableMemoryBytes } from './memory-limit.ts';
import type { LinearWeight, WeightPrecision } from '../graphs/ops/linear.ts';
import { CheckpointReader } from './checkpoint/safetensors.ts';
import { checkpointWeights } from './checkpoint/weight-source.ts';
import { checkpointFingerprint } from './fingerprint.ts';
import type { SwigluWeights } from '../graphs/ops/swiglu.ts';
import type { SwigluWeightNames } from './family.ts';
import {
  buildAttentionIn,
  buildAttentionOut,
  buildLmHead,
  buildMlpIn,
  type MlpSlice,
  buildOutProjection,
  buildSwiglu,
  shardRanges,
  sliceSwiglu,
} from '../graphs/layer-graphs.ts';
import { readLinear, readSwiglu, type ReadWeight } from '../graphs/read-weights.ts';
import { loadModelSpec } from './registry.ts';
import { isMoe, type ModelSpec } from './spec.ts';

/** Bump when graph layouts change: old compiled directories are then not reused. */
const COMPILER_VERSION = 10;

export interface CompileOptions {
  modelDir: string;
  weights: WeightPrecision;
  /**
   * MatMulNBits accuracy_level for 4-bit weights: 4 (default) rounds activations to int8 per
   * block and is fast; 0 computes in fp32, exact to the dequantised weights but several times slower.
   */
  int4AccuracyLevel?: 0 | 4;
  /** Tensor-parallel shards (threads) the MLPs and the LM head are split over; default 1. */
  tensorParallel?: number;
  /** How routed experts sit on the shards; default 'auto' (resolveExpertPlacement). */
  expertPlacement?: ExpertPlacement | 'auto';
  /** Parent directory of compiled models; defaults to defaultCacheDir(). */
  cacheDir?: string;
  onProgress?: (done: number, total: number, what: string) => void;
}

/**
 * Routed experts across tensor-parallel shards. 'split': every shard holds a slice of every
 * expert's intermediate units and runs its slice of each chosen expert. 'replicate': every
 * shard holds every expert whole (the routed experts' memory once per shard) and runs whole
 * experts, the step's chosen experts dealt out among the shards: half as many, twice as
 * large matmuls per shard, which ONNX Runtime's one-row kernels run more efficiently.
 */
export type ExpertPlacement = 'split' | 'replicate';

/** Replicas may take at most this share of the machine's memory for 'auto' to replicate. */
const REPLICA_MEMORY_SHARE = 1 / 8;

/**
 * 'auto' replicates the routed experts when the copies beyond the first fit in an eighth of
 * the machine's memory (the bench model in int4: about 0.4 GB more; DeepSeekMoE-16B in int4:
 * about 11 GB more, so it stays split below about 90 GB). One shard has nothing to place.
 */
export function resolveExpertPlacement(
  spec: ModelSpec,
  weights: WeightPrecision,
  tensorParallel: number,
  requested: ExpertPlacement | 'auto',
): ExpertPlacement {
  if (tensorParallel <= 1) return 'split';
  if (requested !== 'auto') return requested;
  const routed = spec.mlp.reduce((n, m) => n + (isMoe(m) ? m.numRoutedExperts * 3 * spec.hiddenSize * m.expertIntermediateSize : 0), 0);
  // 4-bit blocks of 32 with an f32 scale, and ONNX Runtime's prepacked copy on top (~1.2x).
  const bytesPerWeight = weights === 'int4' ? 0.75 : 4;
  return routed * bytesPerWeight * (tensorParallel - 1) <= usableMemoryBytes() * REPLICA_MEMORY_SHARE ? 'replicate' : 'split';
}

/** One tensor-parallel shard's slice of a layer's attention and MLP; null where the slice is empty. */
export interface MlpShardGraphs {
  /** q/k/v projection and RoPE for this shard's heads; null when it has none. */
  attnIn: string | null;
  /** Kv heads [start, end) of attnIn (query heads follow: start * group .. end * group). */
  kvHeads: [number, number];
  /**
   * o_proj over this shard's heads only (their columns), a partial sum of the whole projection:
   * each shard projects its own part while the others do, and rank 0 adds the parts into the
   * residual. Null without heads, and for MLA (whose layer attnOut projects).
   */
  oProj: string | null;
  /**
   * From the residual after attention: the post-attention RMSNorm, the router (MoE layers) and
   * this shard's slice of the dense MLP or shared experts (output `y`, when it has one).
   */
  mlpIn: string;
  /** One graph per routed expert (its slice, or whole when replicated); empty for dense layers. */
  experts: Array<string | null>;
}

export interface LayerGraphs {
  /** MLA layers (attention unsplit, on rank 0): W_UV, o_proj and the residual add. */
  attnOut?: string;
  /** MLA layers: the unsplit q / latent-row graph (shards then have no attnIn). */
  mlaIn?: string;
  /** DeepSeek-V3: gate.e_score_correction_bias, exact f32 values (selection only). */
  correctionBias?: number[];
  /** Index = tensor-parallel rank. */
  shards: MlpShardGraphs[];
}

/** A shard's weightless attention graphs, built for its own number of heads. */
export interface ShardAttentionGraphs {
  /** Kv heads [start, end) whose cache planes the shard owns (MLA: rank 0 owns the one latent row). */
  kvHeads: [number, number];
  /** Null when the shard has no heads. */
  core: string | null;
  /** The batched one-token-per-sequence attention of decode steps; null for MLA and without heads. */
  decode: string | null;
}

export interface LmHeadShard {
  file: string;
  /** Vocabulary rows [start, end) this shard's logits cover. */
  start: number;
  end: number;
}

export interface Manifest {
  compilerVersion: number;
  key: string;
  weights: WeightPrecision;
  spec: ModelSpec;
  tensorParallel: number;
  /** Absent in manifests written before placement existed: 'split'. */
  expertPlacement?: ExpertPlacement;
  /** Index = tensor-parallel rank: each shard attends over its own heads' cache. */
  attention: ShardAttentionGraphs[];
  layers: LayerGraphs[];
  /** Index = tensor-parallel rank. */
  lmHead: LmHeadShard[];
  /** Raw little-endian f32 [vocabSize, hiddenSize]. */
  embeddings: string;
}

export interface CompiledModel {
  dir: string;
  manifest: Manifest;
  /** True when an earlier compile was reused. */
  reused: boolean;
}

/**
 * Two shards on any machine with two or more cores: on the small matmuls of a decode step,
 * two single-threaded shards beat one session with a two-thread pool (see shard-group.ts).
 */
export function defaultTensorParallel(): number {
  return Math.min(2, availableParallelism());
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'moe-server');
}

export function compileKey(
  modelDir: string,
  weights: WeightPrecision,
  int4AccuracyLevel: number,
  tensorParallel: number,
  expertPlacement: ExpertPlacement,
): string {
  const hash = createHash('sha256');
  const options = { weights, int4AccuracyLevel: weights === 'int4' ? int4AccuracyLevel : null, tensorParallel, expertPlacement };
  hash.update(JSON.stringify({ compiler: COMPILER_VERSION, options, checkpoint: checkpointFingerprint(modelDir) }));
  return hash.digest('hex').slice(0, 24);
}

export function compileModel(opts: CompileOptions): CompiledModel {
  const { spec, family } = loadModelSpec(opts.modelDir);
  const tensorParallel = opts.tensorParallel ?? 1;
  if (!Number.isSafeInteger(tensorParallel) || tensorParallel < 1)
    throw new RangeError(`tensorParallel must be a positive integer, got ${tensorParallel}`);
  const placement = resolveExpertPlacement(spec, opts.weights, tensorParallel, opts.expertPlacement ?? 'auto');
  const key = compileKey(opts.modelDir, opts.weights, opts.int4AccuracyLevel ?? 4, tensorParallel, placement);
  const outDir = join(opts.cacheDir ?? defaultCacheDir(), 'compiled', key);
  const manifestPath = join(outDir, 'manifest.json');
  if (existsSync(manifestPath)) {
    return { dir: outDir, manifest: JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest, reused: true };
  }
  // Build beside the final place and rename at the end: an interrupted compile never
  // leaves a directory that looks finished.
  const tmpDir = compileTmpDir(outDir);
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true });
  const reader = CheckpointReader.open(opts.modelDir);
  try {
    const names = family.weightNames(spec);
    const read: ReadWeight = checkpointWeights(reader, spec, names, family.checkpointRenames);
    const manifest = writeGraphs(tmpDir, key, spec, names, read, { ...opts, tensorParallel, expertPlacement: placement });
    writeFileSync(join(tmpDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
    return { dir: outDir, manifest, reused: publishCompiled(tmpDir, outDir, 'manifest.json') === 'reused' };
  } catch (err) {
    rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  } finally {
    reader.close();
  }
}

type WeightNames = ReturnType<ReturnType<typeof loadModelSpec>['family']['weightNames']>;

function writeGraphs(
  dir: string,
  key: string,
  spec: ModelSpec,
  names: WeightNames,
  read: ReadWeight,
  opts: CompileOptions & { tensorParallel: number; expertPlacement: ExpertPlacement },
): Manifest {
  const linearOpts = { precision: opts.weights, int4AccuracyLevel: opts.int4AccuracyLevel ?? 4 };
  const shards = opts.tensorParallel;
  const replicate = opts.expertPlacement === 'replicate';
  const routedExperts = spec.mlp.reduce((n, m) => n + (isMoe(m) ? m.numRoutedExperts : 0), 0);
  // An upper bound: graphs of empty slices and repeated attention-core shapes are skipped.
  const total = 1 + 2 * shards + spec.numLayers + shards * (1 + 3 * spec.numLayers + routedExperts);
  let done = 0;
  const emit = (file: string, build: (b: GraphBuilder) => void): string => {
    writeGraph(dir, file, build);
    opts.onProgress?.(++done, total, file);
    return file;
  };
  /** Reads one SwiGLU MLP once; each shard's slice of its intermediate units, null where empty. */
  const shardSlices = (mlpNames: SwigluWeightNames, width: number): Array<SwigluWeights | null> => {
    const weights: SwigluWeights = readSwiglu(read, mlpNames, spec.hiddenSize, width);
    return shardRanges(width, shards).map((range) => (range[1] > range[0] ? sliceSwiglu(weights, range) : null));
  };

  const embeddings = 'embeddings.f32';
  const embed = read(names.embedTokens, [spec.vocabSize, spec.hiddenSize]);
  writeFileSync(join(dir, embeddings), new Uint8Array(embed.buffer, embed.byteOffset, embed.byteLength));
  opts.onProgress?.(++done, total, embeddings);

  const headRanges = attentionInRanges(spec, shards);
  const attention = attentionGraphs(spec, headRanges, emit);
  const layers = names.layers.map((layerNames, i): LayerGraphs => {
    const prefix = `layer${String(i).padStart(3, '0')}`;
    const attentionNames = layerNames.attention;
    const mla = isMlaNames(attentionNames);
    const mlaIn = mla
      ? emit(`${prefix}.mla-in.onnx`, (b) => buildMlaIn(b, spec, layerNames.inputNorm, attentionNames, read, linearOpts))
      : undefined;
    const attnOut = mla ? emit(`${prefix}.attn-out.onnx`, (b) => buildAttentionOut(b, spec, layerNames, read, linearOpts)) : undefined;
    const mlp = spec.mlp[i];
    const mlpNames = layerNames.mlp;
    const postNorm = read(layerNames.postAttentionNorm, [spec.hiddenSize]);
    let router: LinearWeight | null = null;
    let slices: Array<MlpSlice | null>;
    const experts: Array<Array<string | null>> = headRanges.map(() => []);
    if (mlpNames.kind === 'dense' && !isMoe(mlp)) {
      slices = shardSlices(mlpNames.mlp, mlp.intermediateSize).map((weights) => weights && { weights });
    } else if (mlpNames.kind === 'moe' && isMoe(mlp)) {
      router = readLinear(read, mlpNames.router, mlp.numRoutedExperts, spec.hiddenSize);
      const gate = mlpNames.sharedGate === undefined ? undefined : read(mlpNames.sharedGate, [1, spec.hiddenSize]);
      const shared = mlpNames.shared ? shardSlices(mlpNames.shared, mlp.sharedIntermediateSize) : headRanges.map(() => null);
      slices = shared.map((weights) => weights && { weights, gate });
      mlpNames.experts.forEach((expertNames, j) => {
        const name = `${prefix}.expert${String(j).padStart(3, '0')}`;
        if (replicate) {
          // One whole graph, opened by every shard.
          const weights = readSwiglu(read, expertNames, spec.hiddenSize, mlp.expertIntermediateSize);
          const file = emit(`${name}.onnx`, (b) => buildSwiglu(b, spec, weights, linearOpts));
          experts.forEach((list) => list.push(file));
          return;
        }
        shardSlices(expertNames, mlp.expertIntermediateSize).forEach((weights, r) =>
          experts[r].push(weights && emit(`${name}.tp${r}.onnx`, (b) => buildSwiglu(b, spec, weights, linearOpts))),
        );
      });
    } else {
      throw new Error(`layer ${i}: spec and weight names disagree`);
    }
    const perShard = headRanges.map((kvHeads, rank): MlpShardGraphs => {
      const hasHeads = kvHeads[1] > kvHeads[0];
      return {
        attnIn: hasHeads
          ? emit(`${prefix}.attn-in.tp${rank}.onnx`, (b) => buildAttentionIn(b, spec, layerNames, read, linearOpts, kvHeads))
          : null,
        kvHeads,
        oProj:
          hasHeads && !mla
            ? emit(`${prefix}.o-proj.tp${rank}.onnx`, (b) => buildOutProjection(b, spec, layerNames, read, linearOpts, kvHeads))
            : null,
        mlpIn: emit(`${prefix}.mlp-in.tp${rank}.onnx`, (b) => buildMlpIn(b, spec, postNorm, router, slices[rank], linearOpts)),
        experts: experts[rank],
      };
    });
    const bias =
      mlpNames.kind === 'moe' && mlpNames.correctionBias !== undefined && isMoe(mlp)
        ? read(mlpNames.correctionBias, [mlp.numRoutedExperts])
        : undefined;
    return {
      shards: perShard,
      ...(attnOut ? { attnOut } : {}),
      ...(mlaIn ? { mlaIn } : {}),
      ...(bias ? { correctionBias: Array.from(bias) } : {}),
    };
  });
  const norm = read(names.finalNorm, [spec.hiddenSize]);
  const head = readLinear(read, names.lmHead, spec.vocabSize, spec.hiddenSize);
  const lmHead = shardRanges(spec.vocabSize, shards).map(([start, end], rank) => ({
    file: emit(`lm-head.tp${rank}.onnx`, (b) => buildLmHead(b, spec, norm, head, [start, end], linearOpts)),
    start,
    end,
  }));
  if (done < total) opts.onProgress?.(total, total, 'done'); // shards too narrow to split were skipped
  return {
    compilerVersion: COMPILER_VERSION,
    key,
    weights: opts.weights,
    spec,
    tensorParallel: shards,
    expertPlacement: replicate ? 'replicate' : 'split',
    attention,
    layers,
    lmHead,
    embeddings,
  };
}

/** Kv heads [start, end) of each shard's attention input; none for MLA (its own unsplit mlaIn graph). */
function attentionInRanges(spec: ModelSpec, shards: number): Array<[number, number]> {
  if (spec.mla) return Array.from({ length: shards }, (): [number, number] => [0, 0]);
  return shardRanges(spec.numKvHeads, shards);
}

/**
 * Each shard's attention-core and batched-decode graphs, for its own head count (one file per
 * distinct count). MLA keeps attention unsplit on rank 0: its one latent row serves every head.
 */
function attentionGraphs(
  spec: ModelSpec,
  headRanges: Array<[number, number]>,
  emit: (file: string, build: (b: GraphBuilder) => void) => string,
): ShardAttentionGraphs[] {
  const mla = spec.mla;
  if (mla) {
    const core = emit('attention-core.onnx', (b) => buildMlaAttentionCore(b, { numHeads: spec.numHeads, ...mla }));
    return headRanges.map((_, rank) => ({ kvHeads: [0, rank === 0 ? 1 : 0], core: rank === 0 ? core : null, decode: null }));
  }
  const group = spec.numHeads / spec.numKvHeads;
  const built = new Map<number, { core: string; decode: string }>();
  return headRanges.map((kvHeads) => {
    const numKvHeads = kvHeads[1] - kvHeads[0];
    if (numKvHeads === 0) return { kvHeads, core: null, decode: null };
    if (!built.has(numKvHeads)) {
      const shape = { numHeads: numKvHeads * group, numKvHeads, headDim: spec.headDim };
      built.set(numKvHeads, {
        core: emit(`attention-core.kv${numKvHeads}.onnx`, (b) => buildAttentionCore(b, shape)),
        decode: emit(`attention-decode.kv${numKvHeads}.onnx`, (b) => buildDecodeAttention(b, shape)),
      });
    }
    return { kvHeads, ...built.get(numKvHeads)! };
  });
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
