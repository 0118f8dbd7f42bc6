// The demo default: a tiny random-weight DeepSeekMoE checkpoint written once to the cache
// directory and loaded through the same code path as a real checkpoint.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheDir } from '../models/compile.ts';
import { writeSyntheticCheckpoint } from '../models/synthetic.ts';
import type { ProgressCallback } from './progress.ts';

const DEMO_SEED = 0;

export function defaultModelDir(cacheDir = defaultCacheDir()): string {
  return join(cacheDir, 'models', `demo-deepseek-tiny-seed${DEMO_SEED}`);
}

export function ensureDemoModel(onProgress?: ProgressCallback, cacheDir?: string): string {
  const dir = defaultModelDir(cacheDir);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeSyntheticCheckpoint({ outDir: tmp, family: 'deepseek', size: 'tiny', seed: DEMO_SEED, onProgress });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}
