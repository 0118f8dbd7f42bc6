// Continuous batching end to end (real worker, real ONNX Runtime, tiny model): requests that
// share steps, wait for room, get preempted and recomputed, or reuse a cached prefix produce
// exactly the tokens they produce alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationEvent, GenerationRequest } from '../../server/engine/api.ts';
import type { EngineClient } from '../../server/engine/client.ts';
import { type Collected, collect, makeRequest, runnerGreedy, startTinyEngine, summarize, tapWorker } from '../helpers/engine-client.ts';
import { openRunner, testTokens, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

/** Mixed prompt lengths and output lengths; every other request sampled with its own seed. */
function mixedRequests(count: number, seedBase: number): GenerationRequest[] {
  return Array.from({ length: count }, (_, i) => {
    const prompt = testTokens(3 + ((i * 17) % 50), seedBase + i);
    const maxTokens = 6 + ((i * 7) % 25);
    const sampled = i % 2 === 1;
    return makeRequest(prompt, sampled ? { maxTokens, seed: 1000 + i, sampling: { temperature: 0.9, topP: 0.95 } } : { maxTokens });
  });
}

/** Runs a request and aborts it once it has `after` tokens. */
async function cancelAfter(client: EngineClient, request: GenerationRequest, after: number): Promise<Collected> {
  const controller = new AbortController();
  const events: GenerationEvent[] = [];
  for await (const event of client.generate(request, controller.signal)) {
    events.push(event);
    if (event.type === 'token' && summarize(events).tokens.length === after) controller.abort();
  }
  return summarize(events);
}

describe('continuous batching over a small paged KV cache', () => {
  let model: TinyModel;
  let client: EngineClient;

  beforeAll(async () => {
    model = writeTinyModel({}, 33);
    // 96 cached tokens in blocks of 8, at most 6 running, 24 tokens per step: sixteen requests
    // of up to 83 tokens each must queue, be read in chunks and preempt each other.
    client = await startTinyEngine(model, undefined, {
      kvCache: { numTokens: 96, memoryMib: 1, blockSize: 8 },
      scheduler: { maxNumSeqs: 6, maxBatchTokens: 24 },
    });
  });
  afterAll(async () => {
    await client?.close();
    model?.remove();
  });

  it('caps the context at the cache size and refuses a prompt that cannot fit alone before it starts', async () => {
    expect(client.info.maxModelLen).toBe(96);
    expect(client.info.kvCache).toMatchObject({ numBlocks: 12, blockSize: 8, numTokens: 96 });
    const refused = await collect(client, makeRequest(testTokens(96, 5)));
    expect(refused.error?.kind).toBe('invalid_request');
    expect(refused.error?.message).toMatch(/96/);
    expect(refused.tokens).toEqual([]);
  });

  it('gives sixteen concurrent requests, with preemptions and three cancellations among them, exactly their solo tokens', async () => {
    const requests = mixedRequests(16, 500);
    const solo: Collected[] = [];
    for (const request of requests) solo.push(await collect(client, request));
    const preemptionsBefore = client.stats.numPreemptions;
    const cancelled = [3, 8, 12];
    const tap = tapWorker(client);
    const together = await Promise.all(
      requests.map((request, i) => (cancelled.includes(i) ? cancelAfter(client, request, 3) : collect(client, request))),
    );
    tap.stop();
    together.forEach((result, i) => {
      if (cancelled.includes(i)) {
        expect(result.finished?.finishReason).toBe('abort');
        expect(result.tokens.length).toBeGreaterThanOrEqual(3);
        expect(result.tokens).toEqual(solo[i].tokens.slice(0, result.tokens.length));
      } else {
        expect(result.tokens).toEqual(solo[i].tokens);
        expect(result.text).toBe(solo[i].text);
        expect(result.finished?.finishReason).toBe(solo[i].finished?.finishReason);
      }
    });
    expect(client.stats.numPreemptions).toBeGreaterThan(preemptionsBefore);
    const seqsPerStep = tap.steps().map((events) => new Set(events.filter((e) => e.event.type === 'token').map((e) => e.seqId)).size);
    expect(Math.max(...seqsPerStep)).toBeGreaterThan(1);
    expect(Math.max(...seqsPerStep)).toBeLessThanOrEqual(6);
    // Everything finished: every block is back in the pool.
    expect(client.stats).toMatchObject({ numRunning: 0, numWaiting: 0, kvBlocksUsed: 0, kvBlocksTotal: 12 });
  });
});

describe('prefix reuse', () => {
  let model: TinyModel;
  let client: EngineClient;

  beforeAll(async () => {
    model = writeTinyModel({}, 34);
    client = await startTinyEngine(model, undefined, { kvCache: { memoryMib: 16, blockSize: 8 } });
  });
  afterAll(async () => {
    await client?.close();
    model?.remove();
  });

  it('serves prompts sharing a system prompt from its cached blocks, counting the hits, with unchanged output', async () => {
    const system = testTokens(24, 77); // three full blocks
    const prompts = Array.from({ length: 5 }, (_, i) => [...system, ...testTokens(5 + i, 90 + i)]);
    const opened = await openRunner(model, 'fp32');
    const expected: number[][] = [];
    try {
      for (const prompt of prompts) expected.push(await runnerGreedy(opened, prompt, 12));
    } finally {
      await opened.release();
    }
    const first = await collect(client, makeRequest(prompts[0], { maxTokens: 12 }));
    expect(first.tokens).toEqual(expected[0]);
    const hitsBefore = client.stats.prefixCacheHitTokens;
    const rest = await Promise.all(prompts.slice(1).map((prompt) => collect(client, makeRequest(prompt, { maxTokens: 12 }))));
    rest.forEach((result, i) => expect(result.tokens).toEqual(expected[i + 1]));
    expect(client.stats.prefixCacheHitTokens - hitsBefore).toBe(4 * 24);
  });
});
