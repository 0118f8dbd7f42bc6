// The 4-bit weight path (MatMulNBits, the default block size): (1) computed exactly (accuracy_level 0),
// against the reference running on the very weights the 4-bit graphs stand for (quantised
// then dequantised), which isolates layout and packing from quantisation error; (2) as served
// (accuracy_level 4, int8 activations) against the fp32 reference: the same top-1 token on at
// least 95% of positions, logits within 1.5.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dequantizeInt4, quantizeInt4 } from '../../graphs/ops/quantize.ts';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { ReferenceDeepseek } from '../reference/deepseek-reference.ts';
import { argmax } from '../helpers/logits.ts';
import { openRunner, testTokens, type OpenedRunner, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const VOCAB = 32000;
// Wider than the default tiny model: in 64 dimensions, 32000 random token directions are
// too close to each other for any logit ranking to be stable under 4-bit noise.
const WIDER = { hidden_size: 256, intermediate_size: 512, moe_intermediate_size: 128, num_attention_heads: 4, num_key_value_heads: 2 };

/** The reference on the weights the 4-bit graphs hold: every projection and the LM head (not the router). */
function dequantisedReference(dir: string): ReferenceDeepseek {
  const config: unknown = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const reader = CheckpointReader.open(dir);
  try {
    return new ReferenceDeepseek(config, (name, shape) => {
      const w = reader.readFloat32(name, shape);
      const quantised = /_proj\.weight$/.test(name) || name === 'lm_head.weight';
      return quantised ? dequantizeInt4(quantizeInt4(w, shape[0], shape[1])) : w;
    });
  } finally {
    reader.close();
  }
}

async function compare(opened: OpenedRunner, reference: ReferenceDeepseek, steps: number) {
  const cache = opened.newCache();
  const seq = reference.newSequence();
  let tokens = testTokens(32, 9);
  let agree = 0;
  let positions = 0;
  let worst = 0;
  for (let step = 0; step <= steps; step++) {
    const got = await opened.runner.step([{ tokens, cache, logits: 'all' }]);
    const expected = seq.forward(tokens);
    expected.logits.forEach((row, r) => {
      const engineRow = got.logits.subarray(r * VOCAB, (r + 1) * VOCAB);
      if (argmax(engineRow) === argmax(row)) agree++;
      for (let i = 0; i < VOCAB; i++) worst = Math.max(worst, Math.abs(engineRow[i] - row[i]));
      positions++;
    });
    // Both continue with the reference's choice, so the positions stay comparable.
    tokens = [argmax(expected.logits.at(-1)!)];
  }
  return { agreement: agree / positions, positions, worst };
}

describe('4-bit weights', () => {
  let model: TinyModel;

  beforeAll(() => {
    model = writeTinyModel(WIDER, 13);
  });
  afterAll(() => model?.remove());

  it('computed exactly, matches the reference on the dequantised weights within 1e-4', async () => {
    const opened = await openRunner(model, 'int4', 0);
    try {
      const { worst } = await compare(opened, dequantisedReference(model.dir), 4);
      console.log(`int4 (accuracy_level 0) vs dequantised reference: max |logit diff| ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-4);
    } finally {
      await opened.release();
    }
  });

  it('as served, agrees with the fp32 reference on the top-1 token at >= 95% of positions', async () => {
    const opened = await openRunner(model, 'int4', 4);
    try {
      const { agreement, positions, worst } = await compare(opened, ReferenceDeepseek.load(model.dir), 16);
      console.log(
        `int4 vs fp32 reference: top-1 agreement ${(agreement * 100).toFixed(1)}% of ${positions}, max |logit diff| ${worst.toFixed(3)}`,
      );
      expect(positions).toBe(48);
      expect(agreement).toBeGreaterThanOrEqual(0.95);
      expect(worst).toBeLessThan(1.5);
    } finally {
      await opened.release();
    }
  });
});
