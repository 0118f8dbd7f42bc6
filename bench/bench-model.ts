// The benchmark models: the 'bench' synthetic checkpoint of a family (DeepSeekMoE: hidden 1024,
// 8 layers, first dense, 32 routed experts top-4 + 2 shared, ~0.6B parameters; the other
// families at about the same active parameters per token), each written once.
import { join } from 'node:path';
import { ensureSyntheticCheckpoint, type SyntheticFamily } from '../models/synthetic.ts';
import type { ProgressCallback } from '../server/progress.ts';

export function ensureBenchModel(cacheDir: string, onProgress?: ProgressCallback, family: SyntheticFamily = 'deepseek'): string {
  const outDir = join(cacheDir, 'models', `bench-${family}-seed0`);
  return ensureSyntheticCheckpoint({ outDir, family, size: 'bench', seed: 0, onProgress });
}
