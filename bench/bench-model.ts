// The benchmark model: the 'bench' synthetic DeepSeekMoE checkpoint (hidden 1024, 8 layers,
// first dense, 32 routed experts top-4 + 2 shared, ~0.6B parameters), written once.
import { join } from 'node:path';
import { ensureSyntheticCheckpoint } from '../models/synthetic.ts';
import type { ProgressCallback } from '../server/progress.ts';

export function ensureBenchModel(cacheDir: string, onProgress?: ProgressCallback): string {
  const outDir = join(cacheDir, 'models', 'bench-deepseek-seed0');
  return ensureSyntheticCheckpoint({ outDir, family: 'deepseek', size: 'bench', seed: 0, onProgress });
}
