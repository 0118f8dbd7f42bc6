// Teacher-forced prompt scoring: the math of one row against a float64 reference, then the
// real engine (worker, ONNX Runtime, chunked prefill, prefix cache) against one direct
// ModelRunner forward pass over the same tokens.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationEvent, PromptLogprobs } from '../../server/engine/api.ts';
import type { EngineClient } from '../../server/engine/client.ts';
import { expNonPositive } from '../../server/engine/fast-exp.ts';
import { createScoringScratch, emptyPromptLogprobs, scoreRow } from '../../server/engine/prompt-scoring.ts';
import { logSoftmax } from '../../server/engine/sampler.ts';
import { collect, makeRequest, runnerLogitsAll, startTinyEngine } from '../helpers/engine-client.ts';
import { openRunner, testTokens, type OpenedRunner, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

/** log-softmax of row / temperature entirely in float64. */
function reference(row: Float32Array, temperature: number): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp((v - max) / temperature);
  return Float64Array.from(row, (v) => (v - max) / temperature - Math.log(sum));
}

function randomRow(n: number, seed: number, scale: number): Float32Array {
  let state = seed;
  return Float32Array.from({ length: n }, () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return ((state / 2 ** 32) * 2 - 1) * scale;
  });
}

function scoreOne(row: Float32Array, token: number, k: number, temperature = 1): PromptLogprobs {
  const out = emptyPromptLogprobs(1, 1, k);
  scoreRow(row, token, temperature, out, 0, createScoringScratch(row.length));
  return out;
}

/** Sum of the top-k probabilities plus the tail's, in float64. */
function totalMass(scores: PromptLogprobs, i: number): number {
  let sum = Math.exp(scores.tailLogprobs[i]);
  for (let j = 0; j < scores.topK; j++) sum += Math.exp(scores.topLogprobs[i * scores.topK + j]);
  return sum;
}

describe('expNonPositive', () => {
  it('is within a few ulps of Math.exp over the whole range, 0 below it', () => {
    let worst = 0;
    let state = 7;
    for (let i = 0; i < 200_000; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const x = -(state / 2 ** 32) * (i % 2 === 0 ? 745 : 30);
      const exact = Math.exp(x);
      if (exact > 1e-300) worst = Math.max(worst, Math.abs(expNonPositive(x) - exact) / exact);
    }
    expect(worst).toBeLessThan(4 * Number.EPSILON);
    expect([expNonPositive(0), expNonPositive(-0), expNonPositive(-Infinity), expNonPositive(-746)]).toEqual([1, 1, 0, 0]);
    expect(expNonPositive(NaN)).toBeNaN();
  });
});

describe('scoreRow', () => {
  it('equals the float64 log-softmax, ranks the token as vLLM does, and accounts for all the mass', () => {
    for (const [temperature, scale] of [
      [1, 8],
      [2, 8],
      [0.5, 3],
    ]) {
      const row = randomRow(1000, 7, scale);
      const exact = reference(row, temperature);
      const scores = scoreOne(row, 123, 256, temperature);
      expect(scores.logprobs[0]).toBeCloseTo(exact[123], 6);
      expect(scores.ranks[0]).toBe(1 + exact.filter((v) => v > exact[123]).length);
      const order = [...exact.keys()].sort((a, b) => exact[b] - exact[a] || a - b).slice(0, 256);
      expect([...scores.topIds]).toEqual(order);
      order.forEach((id, j) => expect(Math.abs(scores.topLogprobs[j] - exact[id])).toBeLessThan(1e-6));
      expect(Math.abs(totalMass(scores, 0) - 1)).toBeLessThan(1e-6);
      let rest = 0;
      for (let v = 0; v < row.length; v++) if (!order.includes(v)) rest += Math.exp(exact[v]);
      expect(scores.tailLogprobs[0]).toBeCloseTo(Math.log(rest), 5);
    }
  });

  it('is the sampler log-softmax at temperature 1, to float32 rounding', () => {
    const row = randomRow(500, 3, 10);
    const scores = scoreOne(row, 42, 4);
    const logprobs = logSoftmax(row);
    const ulp = (v: number): number => Math.abs(v) * 2 ** -23;
    expect(Math.abs(scores.logprobs[0] - logprobs[42])).toBeLessThanOrEqual(ulp(logprobs[42]));
    for (let j = 0; j < 4; j++) {
      const exact = logprobs[scores.topIds[j]];
      expect(Math.abs(scores.topLogprobs[j] - exact)).toBeLessThanOrEqual(ulp(exact));
    }
  });

  it('keeps the digits of a tiny tail (no 1 - sum cancellation)', () => {
    // One token holds all but ~e-60 of the mass: 1 - sum(top) is 0 in float32 and float64.
    const row = new Float32Array(100).fill(-60);
    row[5] = 0;
    const scores = scoreOne(row, 5, 1);
    expect(scores.tailLogprobs[0]).toBeCloseTo(Math.log(99) - 60, 4);
    expect(scores.logprobs[0]).toBeCloseTo(-99 * Math.exp(-60), 6);
  });

  it('has no tail when k covers the vocabulary, and pads k beyond it', () => {
    const row = randomRow(8, 1, 2);
    const scores = scoreOne(row, 0, 10);
    expect(scores.tailLogprobs[0]).toBe(-Infinity);
    expect([...scores.topIds.subarray(8)]).toEqual([-1, -1]);
    expect(Math.abs(totalMass(scores, 0) - 1)).toBeLessThan(1e-6);
  });
});

type Scores = Extract<GenerationEvent, { type: 'prompt_logprobs' }>['scores'];

function scoresOf(events: GenerationEvent[]): Scores[] {
  return events.flatMap((e) => (e.type === 'prompt_logprobs' ? [e.scores] : []));
}

describe('prompt scoring in the engine', () => {
  let model: TinyModel;
  let client: EngineClient;
  let opened: OpenedRunner;

  beforeAll(async () => {
    model = writeTinyModel({}, 5);
    // Small steps: a 70-token prompt is read in chunks of at most 24 tokens.
    client = await startTinyEngine(model, undefined, { scheduler: { maxNumSeqs: 4, maxBatchTokens: 24 } });
    opened = await openRunner(model, 'fp32');
  });
  afterAll(async () => {
    await client?.close();
    await opened?.release();
    model?.remove();
  });

  /** Checks every scored position against one direct forward pass over the prompt. */
  async function expectDirect(prompt: number[], scores: Scores[], from: number, k: number): Promise<void> {
    const rows = await runnerLogitsAll(opened, prompt);
    let position = from;
    for (const chunk of scores) {
      expect(chunk.start).toBe(position);
      for (let i = 0; i < chunk.tokens.length; i++, position++) {
        const exact = logSoftmax(rows[position - 1]);
        expect(chunk.tokens[i]).toBe(prompt[position]);
        expect(Math.abs(chunk.logprobs[i] - exact[prompt[position]])).toBeLessThan(1e-5);
        for (let j = 0; j < k; j++) {
          expect(Math.abs(chunk.topLogprobs[i * k + j] - exact[chunk.topIds[i * k + j]])).toBeLessThan(1e-5);
        }
        expect(Math.abs(totalMass(chunk, i) - 1)).toBeLessThan(1e-5);
      }
    }
    expect(position).toBe(prompt.length);
  }

  it('scores every prompt position but the first across prefill chunks, equal to a direct forward pass', async () => {
    const prompt = testTokens(70, 11);
    const result = await collect(client, makeRequest(prompt, { maxTokens: 0, promptLogprobs: { topK: 8 } }));
    expect(result.error).toBeNull();
    expect(result.tokens).toEqual([]);
    expect(result.finished?.finishReason).toBe('length');
    const scores = scoresOf(result.events);
    expect(scores.length).toBeGreaterThan(2); // several chunks
    await expectDirect(prompt, scores, 1, 8);
  });

  it('scores before the first token and keeps logprobs raw whatever the penalties', async () => {
    const prompt = testTokens(20, 12);
    const plain = await collect(client, makeRequest(prompt, { maxTokens: 2, promptLogprobs: { topK: 3 } }));
    const penalised = await collect(
      client,
      makeRequest(prompt, {
        maxTokens: 2,
        promptLogprobs: { topK: 3 },
        sampling: { repetitionPenalty: 1.8, presencePenalty: 1, logitBias: new Map([[prompt[5], -50]]) },
      }),
    );
    const firstToken = plain.events.findIndex((e) => e.type === 'token');
    expect(plain.events.slice(0, firstToken).some((e) => e.type === 'prompt_logprobs')).toBe(true);
    expect(plain.tokens).toHaveLength(2);
    const a = scoresOf(plain.events);
    const b = scoresOf(penalised.events);
    expect(b.map((s) => [...s.logprobs])).toEqual(a.map((s) => [...s.logprobs]));
    await expectDirect(prompt, a, 1, 3);
  });

  it('never serves scored positions from the prefix cache, and reports what the cache served', async () => {
    const prompt = testTokens(64, 13);
    const warm = await collect(client, makeRequest(prompt, { maxTokens: 1 }));
    expect(warm.finished?.cachedTokens).toBe(0);
    const again = await collect(client, makeRequest(prompt, { maxTokens: 1 }));
    expect(again.finished?.cachedTokens).toBe(48); // three full 16-token blocks; the last token is always run
    const scored = await collect(client, makeRequest(prompt, { maxTokens: 0, promptLogprobs: { topK: 2 } }));
    expect(scored.finished?.cachedTokens).toBe(0);
    await expectDirect(prompt, scoresOf(scored.events), 1, 2);
    // Scoring from position 40 on: the blocks before position 39 may come from the cache.
    const tail = await collect(client, makeRequest(prompt, { maxTokens: 0, promptLogprobs: { topK: 2, from: 40 } }));
    expect(tail.finished?.cachedTokens).toBe(32);
    await expectDirect(prompt, scoresOf(tail.events), 40, 2);
    const uncached = await collect(client, makeRequest(prompt, { maxTokens: 1, prefixCache: false }));
    expect(uncached.finished?.cachedTokens).toBe(0);
  });

  it('applies the temperature before the cut', async () => {
    const prompt = testTokens(12, 14);
    const result = await collect(client, makeRequest(prompt, { maxTokens: 0, promptLogprobs: { topK: 256, temperature: 2 } }));
    const rows = await runnerLogitsAll(opened, prompt);
    const [scores] = scoresOf(result.events);
    for (let i = 0; i < scores.tokens.length; i++) {
      const exact = reference(rows[i], 2);
      expect(Math.abs(scores.logprobs[i] - exact[prompt[i + 1]])).toBeLessThan(1e-5);
      expect(Math.abs(totalMass(scores, i) - 1)).toBeLessThan(1e-5);
    }
  });

  it('refuses maxTokens 0 without scoring and bad scoring options', async () => {
    const zero = await collect(client, makeRequest([1, 2, 3], { maxTokens: 0 }));
    expect(zero.error?.message).toMatch(/maxTokens/);
    const big = await collect(client, makeRequest([1, 2, 3], { maxTokens: 0, promptLogprobs: { topK: 257 } }));
    expect(big.error?.message).toMatch(/topK/);
    const cold = await collect(client, makeRequest([1, 2, 3], { maxTokens: 0, promptLogprobs: { topK: 1, temperature: 0 } }));
    expect(cold.error?.message).toMatch(/temperature/);
  });
});

describe('prompt scoring under preemption', () => {
  let model: TinyModel;
  let client: EngineClient;
  let opened: OpenedRunner;

  beforeAll(async () => {
    model = writeTinyModel({}, 11);
    // 96 cached tokens in blocks of 8: eight requests of about 50 tokens each must preempt.
    client = await startTinyEngine(model, undefined, {
      kvCache: { numTokens: 96, memoryMib: 1, blockSize: 8 },
      scheduler: { maxNumSeqs: 6, maxBatchTokens: 24 },
    });
    opened = await openRunner(model, 'fp32');
  });
  afterAll(async () => {
    await client?.close();
    await opened?.release();
    model?.remove();
  });

  it('scores each prompt position exactly once, recomputed sequences included', async () => {
    const prompts = [21, 22, 23, 24, 25, 26, 27, 28].map((length, i) => testTokens(length, 300 + i));
    const before = client.stats.numPreemptions;
    const results = await Promise.all(
      prompts.map((prompt) => collect(client, makeRequest(prompt, { maxTokens: 24, ignoreEos: true, promptLogprobs: { topK: 2 } }))),
    );
    expect(client.stats.numPreemptions).toBeGreaterThan(before);
    for (const [i, result] of results.entries()) {
      expect(result.error).toBeNull();
      const rows = await runnerLogitsAll(opened, prompts[i]);
      const positions = scoresOf(result.events).flatMap((s) => Array.from(s.tokens, (_, j) => s.start + j));
      expect(positions).toEqual(prompts[i].slice(1).map((_, j) => j + 1));
      for (const s of scoresOf(result.events)) {
        s.logprobs.forEach((lp, j) => expect(Math.abs(lp - logSoftmax(rows[s.start + j - 1])[s.tokens[j]])).toBeLessThan(1e-5));
      }
    }
  });
});
