// Tiny random-weight checkpoints written through the real synthetic writer, compiled through
// the real compile step and opened as real ONNX Runtime sessions: model tests exercise the
// same path as a real checkpoint, only smaller.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WeightPrecision } from '../../graphs/ops/linear.ts';
import { compileModel, type ExpertPlacement } from '../../models/compile.ts';
import { type SyntheticFamily, writeSyntheticCheckpoint } from '../../models/synthetic.ts';
import { BlockManager, SequenceBlocks } from '../../server/engine/block-manager.ts';
import { ModelRunner } from '../../runtime/model-runner.ts';
import { openModelSessions } from '../../runtime/model-sessions.ts';

export interface TinyModel {
  dir: string;
  cacheDir: string;
  remove(): void;
}

export function writeTinyModel(
  configOverrides: Record<string, unknown> = {},
  seed = 1,
  family: SyntheticFamily = 'deepseek',
  fusedExperts = false,
): TinyModel {
  const root = mkdtempSync(join(tmpdir(), 'moe-tiny-'));
  const dir = join(root, 'model');
  writeSyntheticCheckpoint({ outDir: dir, size: 'tiny', seed, configOverrides, family, fusedExperts });
  return { dir, cacheDir: join(root, 'cache'), remove: () => rmSync(root, { recursive: true, force: true }) };
}

export interface OpenedRunner {
  runner: ModelRunner;
  /** A sequence's cache with blocks for `maxTokens` positions taken from the runner's pool. */
  newCache(maxTokens?: number): SequenceBlocks;
  release(): Promise<void>;
}

export async function openRunner(
  model: TinyModel,
  weights: WeightPrecision,
  int4AccuracyLevel: 0 | 4 = 4,
  tensorParallel = 1,
  blockSize = 16,
  attention: 'wasm' | 'onnx' = 'wasm',
  expertPlacement: ExpertPlacement | 'auto' = 'auto',
  int4BlockSize?: number,
): Promise<OpenedRunner> {
  const compiled = compileModel({
    modelDir: model.dir,
    weights,
    int4AccuracyLevel,
    int4BlockSize,
    tensorParallel,
    expertPlacement,
    cacheDir: model.cacheDir,
  });
  const sessions = await openModelSessions(compiled, { provider: 'cpu', intraOpThreads: 1, attention });
  const { spec } = compiled.manifest;
  const { maxPositions } = spec;
  // Room for 32 full-length sequences: tests open a few caches each and never free them.
  const numBlocks = Math.ceil((32 * maxPositions) / blockSize);
  const blocks = new BlockManager(numBlocks, blockSize);
  const runner = new ModelRunner(sessions, { numBlocks, blockSize });
  return {
    runner,
    newCache: (maxTokens = maxPositions) => {
      const cache = new SequenceBlocks();
      blocks.allocate(cache, [], maxTokens, 0);
      return cache;
    },
    release: () => sessions.release(),
  };
}

/** Deterministic token ids in [3, vocab) (skipping unk/bos/eos) for test prompts. */
export function testTokens(count: number, seed: number, vocab = 32000): number[] {
  let state = seed * 2654435761 + 12345;
  return Array.from({ length: count }, () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return 3 + (state % (vocab - 3));
  });
}
