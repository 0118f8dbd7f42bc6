// DeepSeek-V2/V3 keep the compressed latent cache: one row of kv_lora_rank + qk_rope_head_dim
// per token and layer and no value row, never per-head keys and values; sequences batched in
// one step attend only over their own rows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kvBytesPerToken, kvCacheShape } from '../../runtime/attention/kv-cache-shape.ts';
import { openRunner, testTokens, type OpenedRunner, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

describe('MLA latent KV cache', () => {
  let model: TinyModel;
  let opened: OpenedRunner;

  beforeAll(async () => {
    model = writeTinyModel({}, 3, 'deepseek_v3');
    opened = await openRunner(model, 'fp32');
  });
  afterAll(async () => {
    await opened?.release();
    model?.remove();
  });

  it('stores kv_lora_rank + qk_rope_head_dim values per token and layer, and no values', () => {
    const spec = opened.runner.spec;
    expect(kvCacheShape(spec)).toEqual({ numLayers: 3, numKvHeads: 1, keyHeadDim: 32 + 8, valueHeadDim: 0 });
    const cache = opened.newCache(64);
    opened.runner.step([{ tokens: testTokens(20, 1), cache, logits: 'last' }]);
    const pool = opened.runner.kvPool;
    for (let layer = 0; layer < 3; layer++) {
      expect(pool.values[layer].length).toBe(0);
      // Each of the 20 positions holds one 40-value row in the sequence's blocks.
      for (let position = 0; position < 20; position++) {
        const slot = cache.blockIds[Math.floor(position / pool.blockSize)] * pool.blockSize + (position % pool.blockSize);
        expect(pool.keys[layer].subarray(slot * 40, (slot + 1) * 40).some((v) => v !== 0)).toBe(true);
      }
    }
    // A plain cache would hold 4 heads x (16 + 8) key and 4 x 16 value values per layer.
    expect(kvBytesPerToken(spec)).toEqual({ cache: 4 * 3 * 40, plainKv: 4 * 3 * 4 * (24 + 16) });
  });

  it('two sequences in one step give the logits each gives alone', () => {
    const a = testTokens(9, 2);
    const b = testTokens(5, 4);
    const alone = [a, b].map((tokens) => opened.runner.step([{ tokens, cache: opened.newCache(32), logits: 'last' }]).logits);
    const batched = opened.runner.step([
      { tokens: a, cache: opened.newCache(32), logits: 'last' },
      { tokens: b, cache: opened.newCache(32), logits: 'last' },
    ]).logits;
    const vocab = alone[0].length;
    let worst = 0;
    alone.forEach((row, s) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - batched[s * vocab + i])))));
    expect(worst).toBeLessThan(1e-4);
  });
});
