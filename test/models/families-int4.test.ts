// The 4-bit path of every new family's graphs, computed exactly (MatMulNBits accuracy_level
// 0), against the float64 reference on the weights the 4-bit graphs stand for: each Linear
// that the compiler quantises (in_features a multiple of the 32-wide block, not the router
// or the shared-expert gate, not MLA's kv_b_proj, whose halves are folded into fp32 batched
// matmuls) is quantised and dequantised before the reference sees it. This checks the
// graphs' packing and layout under int4 separately from quantisation error.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantizeInt4, quantizeInt4 } from '../../graphs/ops/quantize.ts';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import type { SyntheticFamily } from '../../models/synthetic.ts';
import { argmax } from '../helpers/logits.ts';
import { openRunner, testTokens, writeTinyModel } from '../helpers/tiny-model.ts';
import type { ReferenceStepResult, WeightGetter } from '../reference/deepseek-reference.ts';
import { ReferenceMla } from '../reference/mla-reference.ts';
import { ReferenceMoe } from '../reference/moe-reference.ts';

const VOCAB = 32000;

function quantisedByCompiler(name: string, shape: number[]): boolean {
  if (name === 'lm_head.weight') return true;
  return /(_proj|_proj_with_mqa|\.w[123])\.weight$/.test(name) && !name.includes('kv_b_proj') && shape[1] % 32 === 0;
}

function dequantisedReference(family: SyntheticFamily, dir: string): { newSequence(): { forward(t: number[]): ReferenceStepResult } } {
  const config: unknown = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const reader = CheckpointReader.open(dir);
  try {
    const get: WeightGetter = (name, shape) => {
      const w = reader.readFloat32(name, shape);
      return quantisedByCompiler(name, shape) ? dequantizeInt4(quantizeInt4(w, shape[0], shape[1])) : w;
    };
    return family === 'deepseek_v2' || family === 'deepseek_v3' ? new ReferenceMla(config, get) : new ReferenceMoe(config, get);
  } finally {
    reader.close();
  }
}

const families: SyntheticFamily[] = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v2', 'deepseek_v3'];

describe.each(families)('%s int4 (accuracy_level 0)', (family) => {
  it('matches the reference on the dequantised weights within 1e-4 (prefill + 4 decode steps)', async () => {
    const model = writeTinyModel({}, 13, family);
    const opened = await openRunner(model, 'int4', 0, 1);
    try {
      const reference = dequantisedReference(family, model.dir).newSequence();
      const cache = opened.newCache();
      let tokens = testTokens(16, 9);
      let worst = 0;
      for (let step = 0; step <= 4; step++) {
        const got = opened.runner.step([{ tokens, cache, logits: 'all' }]);
        const expected = reference.forward(tokens);
        expected.logits.forEach((row, r) => {
          for (let i = 0; i < VOCAB; i++) worst = Math.max(worst, Math.abs(got.logits[r * VOCAB + i] - row[i]));
        });
        tokens = [argmax(expected.logits[expected.logits.length - 1])];
      }
      console.log(`[families-int4] ${family}: max |logit diff| ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-4);
    } finally {
      await opened.release();
      model.remove();
    }
  });
});
