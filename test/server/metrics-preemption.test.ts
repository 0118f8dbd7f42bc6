// Metrics and routed_experts under a small paged KV cache, where concurrent requests are read
// in chunks, wait, and preempt each other (recomputed later): the preemption counter is the
// engine's, every request's routing is still complete and equal to the float64 reference, and
// the per-expert counters equal every routing decision the engine made, recomputation included.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import type { StepReport } from '../../server/engine/api.ts';
import { loadServedModel, type ServedModel } from '../../server/served-model.ts';
import { parseSamples, value } from '../helpers/prometheus-text.ts';
import { referenceRouting } from '../helpers/routing.ts';
import { testTokens, writeTinyModel, type TinyModel } from '../helpers/tiny-model.ts';
import { MODEL } from './helpers.ts';

interface RoutedCompletion {
  choices: Array<{ routed_experts: Array<number[][] | null> }>;
  usage: { prompt_tokens: number; completion_tokens: number };
}

const PROMPT_LENGTHS = [21, 22, 23, 24, 25, 26, 27, 28];
const MAX_TOKENS = 24;

describe('metrics with preemption', () => {
  let tiny: TinyModel;
  let model: ServedModel;
  let built: App;
  let url: string;

  beforeAll(async () => {
    tiny = writeTinyModel({}, 11);
    // 96 cached tokens in blocks of 8, at most 6 running, 24 tokens per step (as the engine's
    // continuous-batching test): eight requests of about 50 tokens each must preempt.
    model = await loadServedModel({
      modelDir: tiny.dir,
      cacheDir: tiny.cacheDir,
      weights: 'fp32',
      threads: 1,
      tensorParallel: 1,
      servedModelName: MODEL,
      kvCache: { numTokens: 96, memoryMib: 1, blockSize: 8 },
      scheduler: { maxNumSeqs: 6, maxBatchTokens: 24 },
    });
    built = await buildApp({ model });
    await built.app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(built.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await built?.app.close();
    await model?.engine.close();
    tiny?.remove();
  });

  it("counts preemptions and keeps every request's routing exact", async () => {
    const reports: StepReport[] = [];
    const stop = model.engine.observeSteps((report) => reports.push(report));
    // Generated token ids by prompt length (unique per request), from the engine's own events.
    const promptLengthOf = new Map<string, number>();
    const generated = new Map<number, number[]>();
    const stopTokens = model.engine.observe((seqId, event) => {
      if (event.type === 'accepted') promptLengthOf.set(seqId, event.promptTokens);
      if (event.type !== 'token') return;
      const length = promptLengthOf.get(seqId)!;
      generated.set(length, [...(generated.get(length) ?? []), event.token]);
    });
    const prompts = PROMPT_LENGTHS.map((length, i) => testTokens(length, 300 + i));
    const send = async (prompt: number[]): Promise<RoutedCompletion> => {
      const body = { model: MODEL, prompt, max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true, routed_experts: true };
      const response = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return (await response.json()) as RoutedCompletion;
    };
    const responses = await Promise.all(prompts.map(send));
    stop();
    stopTokens();
    const samples = parseSamples(await (await fetch(`${url}/metrics`)).text());

    expect(model.engine.stats.numPreemptions).toBeGreaterThan(0);
    expect(value(samples, 'moe_num_preemptions_total')).toBe(model.engine.stats.numPreemptions);
    expect(value(samples, 'moe_kv_cache_num_blocks')).toBe(12);
    // Complete (no null: distinct prompts share no cached prefix) and exact, rows of recomputed tokens included.
    const routed = responses.map((r) => r.choices[0].routed_experts);
    routed.forEach((tokens, i) => expect(tokens).toHaveLength(PROMPT_LENGTHS[i] + MAX_TOKENS - 1));
    const sequences = prompts.map((prompt) => ({ prompt, generated: generated.get(prompt.length)! }));
    expect(routed).toEqual(referenceRouting(tiny.dir, sequences));

    // Counters = every decision the engine made, recomputed tokens too (unless a recompute found its blocks still cached).
    const stepTokens = reports.reduce((n, r) => n + r.numTokens, 0);
    expect(value(samples, 'moe_layer_routed_tokens_total', { layer: '1' })).toBe(stepTokens);
    expect(stepTokens).toBeGreaterThanOrEqual(routed.reduce((n, tokens) => n + tokens.length, 0));
    const counts = new Array<number>(8).fill(0);
    for (const report of reports) for (const e of report.expertIds[0]) counts[e]++;
    const counters = counts.map((_, e) => value(samples, 'moe_expert_routed_tokens_total', { layer: '1', expert: String(e) }));
    expect(counters).toEqual(counts);
  });
});
