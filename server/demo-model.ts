// The demo default: a tiny random-weight DeepSeekMoE checkpoint written once to the cache
// directory and loaded through the same code path as a real checkpoint.
import { join } from 'node:path';
import { defaultCacheDir } from '../models/compile.ts';
import { ensureSyntheticCheckpoint } from '../models/synthetic.ts';
import type { ProgressCallback } from './progress.ts';

const DEMO_SEED = 0;

export function defaultModelDir(cacheDir = defaultCacheDir()): string {
  return join(cacheDir, 'models', `demo-deepseek-tiny-seed${DEMO_SEED}`);
}

export function ensureDemoModel(onProgress?: ProgressCallback, cacheDir?: string): string {
  const outDir = defaultModelDir(cacheDir);
  return ensureSyntheticCheckpoint({ outDir, family: 'deepseek', size: 'tiny', seed: DEMO_SEED, onProgress });
}
