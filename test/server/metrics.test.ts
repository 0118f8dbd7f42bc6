// /metrics and /v1/experts/stats against what the engine really did: the per-expert counters
// equal the routing each request got back (`routed_experts: true`, itself equal token by
// token to an independent float64 reference forward pass of the same tokens) and the routing
// of every step the engine reported (the step observer, a debug hook), and sum to routed
// tokens x top-k, where routed tokens come from the responses' usage.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { MoeMlpSpec } from '../../models/spec.ts';
import { buildApp } from '../../server/app.ts';
import type { StepReport } from '../../server/engine/api.ts';
import { summarizeLoad } from '../../server/metrics/load-stats.ts';
import type { ExpertStatsBody } from '../../server/metrics/server-metrics.ts';
import { testTokens } from '../helpers/tiny-model.ts';
import { parseSamples, select, value, type Sample } from '../helpers/prometheus-text.ts';
import { referenceRouting } from '../helpers/routing.ts';
import { MODEL, postJson, serveTinyModel, ssePayloads } from './helpers.ts';

const served = serveTinyModel({ expertLoadWindow: 100_000 });
const PROMPT_LENGTHS = [7, 12, 19];
const MAX_TOKENS = 5;

interface RoutedCompletion {
  choices: Array<{ routed_experts: Array<number[][] | null> }>;
  usage: { prompt_tokens: number; completion_tokens: number };
}

/** Per (MoE layer ordinal, expert): counts of flat routing rows (step reports). */
function countRows(expertIds: Int32Array[], numExperts: number, into: number[][] = []): number[][] {
  expertIds.forEach((ids, i) => {
    into[i] ??= new Array<number>(numExperts).fill(0);
    for (const e of ids) into[i][e]++;
  });
  return into;
}

/** Per (MoE layer ordinal, expert): counts of per-token routing, [token][layer][k]. */
function countTokens(tokens: number[][][], numLayers: number, numExperts: number): number[][] {
  const counts = Array.from({ length: numLayers }, () => new Array<number>(numExperts).fill(0));
  for (const token of tokens) token.forEach((ids, i) => ids.forEach((e) => counts[i][e]++));
  return counts;
}

async function scrape(): Promise<Sample[]> {
  const response = await fetch(`${served.server.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseSamples(await response.text());
}

/** Sends three greedy completions at once; returns their prompts, generated tokens and the step reports. */
async function sendKnownTraffic() {
  const reports: StepReport[] = [];
  const outputs = new Map<number, number[]>(); // prompt length -> generated token ids
  const promptLengthOf = new Map<string, number>();
  const stopSteps = served.test.model.engine.observeSteps((report) => reports.push(report));
  const stopEvents = served.test.model.engine.observe((seqId, event) => {
    if (event.type === 'accepted') promptLengthOf.set(seqId, event.promptTokens);
    if (event.type !== 'token') return;
    const length = promptLengthOf.get(seqId)!;
    outputs.set(length, [...(outputs.get(length) ?? []), event.token]);
  });
  const prompts = PROMPT_LENGTHS.map((length, i) => testTokens(length, 100 + i));
  const responses = await Promise.all(
    prompts.map(async (prompt) => {
      const body = { model: MODEL, prompt, max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true, routed_experts: true };
      const response = await postJson(served.server, '/v1/completions', body);
      expect(response.status).toBe(200);
      return (await response.json()) as RoutedCompletion;
    }),
  );
  stopSteps();
  stopEvents();
  return { prompts, responses, reports, outputs };
}

describe('metrics of known requests', () => {
  it('counts every routing decision exactly, per layer and expert', async () => {
    const spec = served.test.model.engine.info.spec;
    const moe = spec.mlp.flatMap((mlp, layer) => (mlp.kind === 'moe' ? [{ layer, mlp: mlp as MoeMlpSpec }] : []));
    const { numRoutedExperts: numExperts, numExpertsPerToken: topK } = moe[0].mlp;
    const { prompts, responses, reports, outputs } = await sendKnownTraffic();
    const samples = await scrape();

    // Routed tokens from the responses alone: every prompt token and every generated token but the last.
    const routedTokens = responses.reduce((n, r) => n + r.usage.prompt_tokens + r.usage.completion_tokens - 1, 0);
    expect(routedTokens).toBe(PROMPT_LENGTHS.reduce((a, b) => a + b, 0) + prompts.length * (MAX_TOKENS - 1));
    // No prefix-cache hits in this first traffic: every token was run, so none is null.
    const routedByResponse = responses.map((r) => r.choices[0].routed_experts.filter((token) => token !== null));
    routedByResponse.forEach((routed, p) => {
      expect(routed).toHaveLength(responses[p].usage.prompt_tokens + responses[p].usage.completion_tokens - 1);
      for (const token of routed) expect(token.map((ids) => ids.length)).toEqual(moe.map(() => topK));
    });
    // Token by token, layer by layer, in the same order (descending score).
    prompts.forEach((prompt) => expect(outputs.get(prompt.length)).toHaveLength(MAX_TOKENS));
    const fromReference = referenceRouting(
      served.test.tiny.dir,
      prompts.map((prompt) => ({ prompt, generated: outputs.get(prompt.length)! })),
    );
    expect(routedByResponse).toEqual(fromReference);
    const fromResponses = countTokens(routedByResponse.flat(), moe.length, numExperts);
    const fromHook = countRows([], numExperts);
    for (const report of reports) countRows(report.expertIds, numExperts, fromHook);

    moe.forEach(({ layer }, i) => {
      const labels = { model_name: MODEL, layer: String(layer) };
      const counters = Array.from({ length: numExperts }, (_, e) =>
        value(samples, 'moe_expert_routed_tokens_total', { ...labels, expert: String(e) }),
      );
      expect(counters).toEqual(fromResponses[i]);
      expect(counters).toEqual(fromHook[i]);
      expect(counters.reduce((a, b) => a + b, 0)).toBe(routedTokens * topK);
      expect(value(samples, 'moe_layer_routed_tokens_total', labels)).toBe(routedTokens);
      expect(value(samples, 'moe_shared_expert_tokens_total', labels)).toBe(routedTokens);
      // The window holds everything (100,000 tokens): its statistics are those of the counters.
      const summary = summarizeLoad(counters);
      expect(value(samples, 'moe_expert_load_window_tokens', labels)).toBe(routedTokens);
      expect(value(samples, 'moe_expert_load_max_mean_ratio', labels)).toBeCloseTo(summary.maxMeanRatio, 9);
      expect(value(samples, 'moe_expert_load_cv', labels)).toBeCloseTo(summary.coefficientOfVariation, 9);
      expect(value(samples, 'moe_router_entropy_normalized', labels)).toBeCloseTo(summary.normalizedEntropy, 9);
      expect(value(samples, 'moe_expert_active_fraction', labels)).toBe(summary.activeFraction);
    });
    expect(select(samples, 'moe_expert_routed_tokens_total')).toHaveLength(moe.length * numExperts);
  });

  it('counts requests, tokens, latencies and steps', async () => {
    const before = await scrape();
    const { responses, reports } = await sendKnownTraffic();
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    const promptTokens = responses.reduce((n, r) => n + r.usage.prompt_tokens, 0);
    const completionTokens = responses.reduce((n, r) => n + r.usage.completion_tokens, 0);
    expect(delta('moe_prompt_tokens_total')).toBe(promptTokens);
    expect(delta('moe_generation_tokens_total')).toBe(completionTokens);
    expect(delta('moe_request_finished_total', { finished_reason: 'length' })).toBe(3);
    expect(delta('moe_time_to_first_token_seconds_count')).toBe(3);
    expect(delta('moe_inter_token_latency_seconds_count')).toBe(completionTokens - 3);
    expect(delta('moe_e2e_request_latency_seconds_count')).toBe(3);
    expect(delta('moe_request_queue_time_seconds_count')).toBe(3);
    expect(delta('moe_model_step_duration_seconds_count')).toBe(reports.length);
    expect(delta('moe_step_tokens_sum')).toBe(reports.reduce((n, r) => n + r.numTokens, 0));
    expect(delta('moe_http_requests_total', { method: 'POST', route: '/v1/completions', status: '200' })).toBe(3);
    expect(value(after, 'moe_num_requests_running')).toBe(0);
    expect(value(after, 'moe_num_requests_waiting')).toBe(0);
    expect(value(after, 'moe_kv_cache_usage_ratio')).toBe(0);
    for (const sample of after.filter((s) => s.name.startsWith('moe_'))) expect(sample.labels.model_name).toBe(MODEL);
  });

  it('exports the process and Node.js runtime metrics under their standard names, with the model label', async () => {
    // A full collection now, so the GC histogram has one of each kind it saw to show.
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    // GC entries reach performance observers asynchronously, later on a loaded machine: poll for the major one.
    let samples = await scrape();
    for (let tries = 0; tries < 50 && select(samples, 'nodejs_gc_duration_seconds_count', { kind: 'major' }).length === 0; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      samples = await scrape();
    }
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      const [sample] = select(samples, name);
      expect(sample?.value, name).toBeGreaterThan(0);
      expect(sample.labels.model_name).toBe(MODEL);
    }
    expect(value(samples, 'nodejs_gc_duration_seconds_count', { kind: 'major' })).toBeGreaterThan(0);
    expect(select(samples, 'nodejs_active_handles').length).toBeGreaterThan(0);
    // The per-type gauges' sums, which promtool's lint refuses (a gauge named _total), are left out.
    expect(samples.filter((s) => /^nodejs_active_\w+_total$/.test(s.name))).toEqual([]);
  });

  it('serves the windows as JSON, matching the counters', async () => {
    const response = await fetch(`${served.server.url}/v1/experts/stats`);
    expect(response.status).toBe(200);
    const stats = (await response.json()) as ExpertStatsBody;
    const samples = await scrape();
    expect(stats).toMatchObject({ object: 'expert_load', model: MODEL, window_tokens: 100_000 });
    expect(stats.layers.map((l) => l.layer)).toEqual([1, 2]);
    for (const layer of stats.layers) {
      const counters = layer.loads.map((_, e) =>
        value(samples, 'moe_expert_routed_tokens_total', { layer: String(layer.layer), expert: String(e) }),
      );
      expect(layer.loads).toEqual(counters);
      expect(layer.expert_routed_tokens_total).toEqual(counters);
      expect(layer.num_tokens).toBe(value(samples, 'moe_layer_routed_tokens_total', { layer: String(layer.layer) }));
      expect(layer.imbalance).toBeCloseTo(layer.max_mean_ratio - 1, 12);
    }
  });

  it('leaves the per-expert series out with --expert-metrics layer, keeping the layer summaries', async () => {
    const { app } = await buildApp({ model: served.test.model, perExpertMetrics: false });
    try {
      await served.client.completions.create({ model: MODEL, prompt: 'Hello', max_tokens: 2 });
      const samples = parseSamples((await app.inject({ method: 'GET', url: '/metrics' })).body);
      expect(select(samples, 'moe_expert_routed_tokens_total')).toHaveLength(0);
      expect(select(samples, 'moe_expert_load_max_mean_ratio')).toHaveLength(2);
      expect(value(samples, 'moe_layer_routed_tokens_total', { layer: '1' })).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });

  it('asks for the API key on /metrics, /v1/experts/stats and /dashboard, which also takes ?api_key', async () => {
    const { app } = await buildApp({ model: served.test.model, apiKeys: ['secret'] });
    try {
      for (const url of ['/metrics', '/v1/experts/stats', '/dashboard']) {
        expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(401);
        expect((await app.inject({ method: 'GET', url, headers: { authorization: 'Bearer secret' } })).statusCode, url).toBe(200);
      }
      const page = await app.inject({ method: 'GET', url: '/dashboard?api_key=secret' });
      expect(page.statusCode).toBe(200);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect((await app.inject({ method: 'GET', url: '/metrics?api_key=secret' })).statusCode).toBe(401);
    } finally {
      await app.close();
    }
  });

  it('serves /metrics while the model loads; /v1/experts/stats answers 503 until it is ready', async () => {
    const { app } = await buildApp({ model: new Promise<never>(() => {}) });
    try {
      const metrics = await app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).toContain('# TYPE moe_num_requests_running gauge');
      const stats = await app.inject({ method: 'GET', url: '/v1/experts/stats' });
      expect(stats.statusCode).toBe(503);
      expect(stats.json()).toMatchObject({ error: { code: 'model_loading' } });
    } finally {
      await app.close();
    }
  });

  it("streams routed_experts with each choice's last chunk, and leaves it out unless asked", async () => {
    const body = { model: MODEL, prompt: [5, 6, 7, 8], max_tokens: 3, n: 2, ignore_eos: true, stream: true, routed_experts: true };
    const chunks = (await ssePayloads(await postJson(served.server, '/v1/completions', body)))
      .slice(0, -1)
      .map((p) => JSON.parse(p) as { choices: Array<Record<string, unknown>> });
    const finals = chunks.flatMap((c) => c.choices).filter((c) => c.finish_reason !== null);
    expect(finals).toHaveLength(2);
    for (const choice of finals) expect(choice.routed_experts).toHaveLength(4 + 3 - 1);
    expect(chunks.flatMap((c) => c.choices).filter((c) => 'routed_experts' in c)).toHaveLength(2);
    const plain = await served.client.completions.create({ model: MODEL, prompt: 'Hi', max_tokens: 2 });
    expect('routed_experts' in plain.choices[0]).toBe(false);
  });

  it('reports prefix-cache hits, and null routing for prompt tokens the cache spared', async () => {
    const prompt = testTokens(40, 7); // two full 16-token blocks, then a partial one
    const send = async () => {
      const body = { model: MODEL, prompt, max_tokens: 2, temperature: 0, ignore_eos: true, routed_experts: true };
      return (await (await postJson(served.server, '/v1/completions', body)).json()) as RoutedCompletion;
    };
    const before = await scrape();
    const first = await send();
    const middle = await scrape();
    const second = await send();
    const after = await scrape();
    const hits = value(after, 'moe_prefix_cache_hit_tokens_total') - value(middle, 'moe_prefix_cache_hit_tokens_total');
    expect(value(middle, 'moe_prefix_cache_hit_tokens_total') - value(before, 'moe_prefix_cache_hit_tokens_total')).toBe(0);
    expect(hits).toBe(32);
    expect(value(after, 'moe_prefix_cache_query_tokens_total')).toBeGreaterThan(value(middle, 'moe_prefix_cache_query_tokens_total'));
    const routedFirst = first.choices[0].routed_experts;
    const routedSecond = second.choices[0].routed_experts;
    expect(routedFirst.every((token) => token !== null)).toBe(true);
    expect(routedSecond.slice(0, hits).every((token) => token === null)).toBe(true);
    expect(routedSecond.slice(hits)).toEqual(routedFirst.slice(hits));
    const routedDelta =
      value(after, 'moe_layer_routed_tokens_total', { layer: '1' }) - value(middle, 'moe_layer_routed_tokens_total', { layer: '1' });
    expect(routedDelta).toBe(40 + 2 - 1 - hits);
  });
});
