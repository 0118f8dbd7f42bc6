// Scoring on the API against the real tiny model: completions' echo logprobs and vLLM's
// prompt_logprobs equal one direct ModelRunner forward pass over the same tokens (within
// 1e-5), and usage counts the prefix cache's hits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logSoftmax } from '../../server/engine/sampler.ts';
import { runnerLogitsAll } from '../helpers/engine-client.ts';
import { openRunner, type OpenedRunner } from '../helpers/tiny-model.ts';
import { MODEL, postJson, serveTinyModel } from './helpers.ts';

type PromptLogprobs = Array<Record<string, { logprob: number; rank: number; decoded_token: string }> | null>;

describe('scoring on the API with the real model', () => {
  const served = serveTinyModel();
  let opened: OpenedRunner;

  beforeAll(async () => {
    opened = await openRunner(served.test.tiny, 'fp32'); // the server's compiled graphs
  });
  afterAll(async () => {
    await opened?.release();
  });

  it('echo logprobs of a text equal a direct forward pass within 1e-5', async () => {
    const text = 'The quick brown fox jumps over the lazy dog, and then it runs far away';
    const completion = await served.client.completions.create({ model: MODEL, prompt: text, echo: true, logprobs: 5, max_tokens: 0 });
    const ids = served.test.model.tokenizer.encode(text);
    const rows = await runnerLogitsAll(opened, ids);
    const { logprobs, text: echoed } = completion.choices[0];
    expect(echoed).toBe(text);
    expect(completion.usage?.completion_tokens).toBe(0);
    expect(logprobs?.tokens).toHaveLength(ids.length);
    expect(logprobs?.token_logprobs?.[0]).toBeNull();
    for (let p = 1; p < ids.length; p++) {
      const exact = logSoftmax(rows[p - 1]);
      expect(Math.abs(logprobs!.token_logprobs![p] - exact[ids[p]])).toBeLessThan(1e-5);
      const top = logprobs!.top_logprobs![p];
      // The top 5 plus the prompt token (when not among them).
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(5);
      const best = Math.max(...exact);
      expect(Math.abs(Math.max(...Object.values(top)) - best)).toBeLessThan(1e-5);
    }
  });

  it('echo keeps the prompt before generated tokens, whose logprobs follow', async () => {
    const completion = await served.client.completions.create({
      model: MODEL,
      prompt: 'Once upon a time',
      echo: true,
      logprobs: 1,
      max_tokens: 3,
      temperature: 0,
    });
    const ids = served.test.model.tokenizer.encode('Once upon a time');
    const { logprobs, text } = completion.choices[0];
    expect(text.startsWith('Once upon a time')).toBe(true);
    expect(logprobs?.tokens).toHaveLength(ids.length + 3);
    const plain = await served.client.completions.create({
      model: MODEL,
      prompt: 'Once upon a time',
      logprobs: 1,
      max_tokens: 3,
      temperature: 0,
    });
    expect(text).toBe(`Once upon a time${plain.choices[0].text}`);
    expect(logprobs?.token_logprobs?.slice(ids.length)).toEqual(plain.choices[0].logprobs?.token_logprobs);
  });

  it("chat prompt_logprobs equal a direct forward pass over the rendered prompt, ranked as vLLM's", async () => {
    const messages = [{ role: 'user', content: 'What is the capital of France?' }];
    const response = await postJson(served.server, '/v1/chat/completions', { model: MODEL, messages, max_tokens: 1, prompt_logprobs: 3 });
    const body = (await response.json()) as { prompt_logprobs: PromptLogprobs };
    const tokenized = await postJson(served.server, '/tokenize', { model: MODEL, messages });
    const ids = ((await tokenized.json()) as { tokens: number[] }).tokens;
    const rows = await runnerLogitsAll(opened, ids);
    expect(body.prompt_logprobs).toHaveLength(ids.length);
    expect(body.prompt_logprobs[0]).toBeNull();
    for (let p = 1; p < ids.length; p++) {
      const exact = logSoftmax(rows[p - 1]);
      const entry = body.prompt_logprobs[p]!;
      expect(Math.abs(entry[String(ids[p])].logprob - exact[ids[p]])).toBeLessThan(1e-5);
      expect(entry[String(ids[p])].rank).toBe(1 + exact.filter((v) => v > exact[ids[p]]).length);
      const ranked = Object.values(entry)
        .filter((e) => e.rank <= 3)
        .sort((a, b) => a.rank - b.rank);
      expect(ranked.map((e) => e.rank)).toEqual([1, 2, 3]);
    }
  });

  it('reports prefix-cache hits as usage.prompt_tokens_details.cached_tokens', async () => {
    const system = 'You are a helpful assistant who answers briefly. '.repeat(6);
    const ask = async (question: string) =>
      served.client.chat.completions.create({
        model: MODEL,
        messages: [
          { role: 'system', content: system },
          { role: 'user', content: question },
        ],
        max_tokens: 1,
      });
    const first = await ask('Where is Paris?');
    const second = await ask('Where is Rome?');
    expect(first.usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    const cached = second.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    expect(cached).toBeGreaterThanOrEqual(48);
    expect(cached % 16).toBe(0);
    expect(cached).toBeLessThan(second.usage!.prompt_tokens);
  });
});
