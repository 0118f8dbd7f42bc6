// The engine's forward pass (ONNX Runtime subgraphs + TypeScript gating and dispatch) against
// the independent float64 reference, on tiny DeepSeekMoE checkpoints of every shape the
// family allows: fp32 logits within 1e-4 and identical expert choices for every token and
// layer, over a 32-token prefill and 16 decode steps.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceDeepseek, type ReferenceStepResult } from '../reference/deepseek-reference.ts';
import { argmax, engineExperts, maxLogitDiff } from '../helpers/logits.ts';
import { openRunner, testTokens, type OpenedRunner, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const LOGIT_TOLERANCE = 1e-4;
const PREFILL_TOKENS = 32;
const DECODE_STEPS = 16;

const variants: Array<{ name: string; overrides: Record<string, unknown> }> = [
  { name: 'dense first layer, GQA 4/2, top-2, 2 shared, no renorm', overrides: {} },
  { name: 'norm_topk_prob on', overrides: { norm_topk_prob: true } },
  { name: 'no shared experts', overrides: { n_shared_experts: 0 } },
  { name: 'one shared expert, MHA (kv heads = heads)', overrides: { n_shared_experts: 1, num_key_value_heads: 4 } },
  { name: 'top-1 with norm_topk_prob (HF renormalises only when k > 1)', overrides: { num_experts_per_tok: 1, norm_topk_prob: true } },
  {
    name: 'top-3 of 8, two dense layers, MoE every other layer',
    overrides: { num_experts_per_tok: 3, num_hidden_layers: 5, first_k_dense_replace: 2, moe_layer_freq: 2 },
  },
  { name: 'linear rope scaling, tied embeddings', overrides: { rope_scaling: { type: 'linear', factor: 2 }, tie_word_embeddings: true } },
];

describe.each(variants)('DeepSeekMoE fp32 forward matches the reference: $name', ({ overrides }) => {
  let model: TinyModel;
  let opened: OpenedRunner;
  let reference: ReferenceDeepseek;

  beforeAll(async () => {
    model = writeTinyModel(overrides, 7);
    opened = await openRunner(model, 'fp32');
    reference = ReferenceDeepseek.load(model.dir);
  });
  afterAll(async () => {
    await opened?.release();
    model?.remove();
  });

  it('prefill and decode logits within 1e-4, identical experts', async () => {
    const topK = Number(overrides.num_experts_per_tok ?? 2);
    const cache = opened.newCache();
    const refSeq = reference.newSequence();
    let tokens = testTokens(PREFILL_TOKENS, 3);
    let worst = 0;
    for (let step = 0; step <= DECODE_STEPS; step++) {
      const result = await opened.runner.step([{ tokens, cache, logits: 'all' }]);
      const expected: ReferenceStepResult = refSeq.forward(tokens);
      expect(result.moeLayers).toEqual(expected.moeLayers);
      expect(engineExperts(result, topK)).toEqual(expected.experts);
      worst = Math.max(worst, maxLogitDiff(result.logits, expected.logits));
      tokens = [argmax(expected.logits[expected.logits.length - 1])];
    }
    expect(worst).toBeLessThanOrEqual(LOGIT_TOLERANCE);
  });
});
