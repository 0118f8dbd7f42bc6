// The served model through the real worker and HTTP app for the two designs the product
// compares: DeepSeek-V3 (fine-grained experts, shared expert, grouped sigmoid routing, latent
// KV cache) and Mixtral (flat top-2). /v1/models lists family, experts and routing, and a
// completion runs end to end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { startTestModel, type TestModel } from './helpers.ts';

describe.each([
  {
    family: 'deepseek_v3' as const,
    expected: {
      family: 'deepseek_v3',
      moe_layers: 2,
      num_routed_experts: 8,
      num_experts_per_token: 2,
      shared_expert_intermediate_size: 32,
      attention: 'multi-head-latent',
      routing: {
        scoring: 'sigmoid',
        correction_bias: true,
        renormalize: true,
        routed_scaling_factor: 2.5,
        groups: { num_groups: 4, topk_groups: 2, group_score: 'top2-sum' },
      },
      kv_cache_bytes_per_token: 4 * 3 * (32 + 8),
      plain_kv_cache_bytes_per_token: 4 * 3 * 4 * (24 + 16),
    },
  },
  {
    family: 'mixtral' as const,
    expected: {
      family: 'mixtral',
      moe_layers: 3,
      num_routed_experts: 8,
      num_experts_per_token: 2,
      shared_expert_intermediate_size: 0,
      attention: 'grouped-query',
      routing: { scoring: 'softmax', renormalize: true, groups: null },
    },
  },
])('/v1/models and a completion for $family', ({ family, expected }) => {
  let test: TestModel;
  let built: App;

  beforeAll(async () => {
    test = await startTestModel({}, `tiny-${family}`, family);
    built = await buildApp({ model: test.model });
  });
  afterAll(async () => {
    await built?.app.close();
    await test?.close();
  });

  it('lists family, experts, routing and cache size, and completes a prompt', async () => {
    const models = (await built.app.inject({ url: '/v1/models' })).json();
    expect(models.data[0]).toMatchObject({ id: `tiny-${family}`, ...expected });
    expect(models.data[0].execution).toMatchObject({ device: 'cpu', plan: 'per-expert', graph_calls_per_decode_step: { device: 0 } });
    expect((await built.app.inject({ url: '/health' })).json()).toMatchObject({ status: 'ok', device: 'cpu' });
    const completion = await built.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { prompt: 'Hello', max_tokens: 4, temperature: 0 },
    });
    expect(completion.statusCode).toBe(200);
    expect(completion.json().usage.completion_tokens).toBeGreaterThan(0);
  });
});
