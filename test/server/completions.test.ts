// /v1/completions through the official `openai` client against a real listening server:
// every prompt form, n, streaming, and logprobs checked against the model's own logits.
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { logSoftmax } from '../../server/engine/sampler.ts';
import { openRunner, testTokens, type OpenedRunner } from '../helpers/tiny-model.ts';
import { MODEL, postJson, serveTinyModel, ssePayloads } from './helpers.ts';

/** Greedy decoding straight through the model runner, one step per token as the engine does. */
async function greedyWithLogits(
  opened: OpenedRunner,
  prompt: number[],
  numTokens: number,
): Promise<Array<{ token: number; logprobs: Float32Array }>> {
  const cache = opened.newCache(prompt.length + numTokens);
  const out: Array<{ token: number; logprobs: Float32Array }> = [];
  let pending = prompt;
  while (out.length < numTokens) {
    const { logits } = await opened.runner.step([{ tokens: pending, cache, logits: 'last' }]);
    const logprobs = logSoftmax(logits);
    let best = 0;
    for (let i = 1; i < logprobs.length; i++) if (logprobs[i] > logprobs[best]) best = i;
    out.push({ token: best, logprobs });
    pending = [best];
  }
  return out;
}

describe('completions over HTTP with the openai client', () => {
  const served = serveTinyModel();

  async function count(prompt: string): Promise<number> {
    return ((await (await postJson(served.server, '/tokenize', { prompt })).json()) as { count: number }).count;
  }

  it('completes a string prompt with exact usage (BOS counted)', async () => {
    const completion = await served.client.completions.create({
      model: MODEL,
      prompt: 'The quick brown fox',
      max_tokens: 5,
      temperature: 0,
    });
    expect(completion.object).toBe('text_completion');
    expect(completion.id).toMatch(/^cmpl-/);
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]).toMatchObject({ index: 0, finish_reason: 'length', logprobs: null });
    expect(completion.choices[0].text.length).toBeGreaterThan(0);
    const promptTokens = await count('The quick brown fox');
    expect(completion.usage).toEqual({
      prompt_tokens: promptTokens,
      completion_tokens: 5,
      total_tokens: promptTokens + 5,
      prompt_tokens_details: { cached_tokens: 0 },
    });
  });

  it('takes an array of strings with n: choices are prompt-major, the prompt counted once each', async () => {
    const prompts = ['Once upon a time', 'In a galaxy far away'];
    const completion = await served.client.completions.create({
      model: MODEL,
      prompt: prompts,
      n: 2,
      max_tokens: 3,
      temperature: 0.8,
      seed: 5,
    });
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    const promptTokens = (await count(prompts[0])) + (await count(prompts[1]));
    expect(completion.usage).toEqual({
      prompt_tokens: promptTokens,
      completion_tokens: 12,
      total_tokens: promptTokens + 12,
      prompt_tokens_details: { cached_tokens: 0 },
    });
    // Same prompt + seed as choice 2 alone: the second prompt's first choice has seed 5.
    const alone = await served.client.completions.create({ model: MODEL, prompt: prompts[1], max_tokens: 3, temperature: 0.8, seed: 5 });
    expect(alone.choices[0].text).toBe(completion.choices[2].text);
  });

  it('takes token ids and arrays of token ids, used as given (no BOS added)', async () => {
    const ids = testTokens(6, 3);
    const single = await served.client.completions.create({ model: MODEL, prompt: ids, max_tokens: 4, temperature: 0 });
    expect(single.usage?.prompt_tokens).toBe(6);
    const batch = await served.client.completions.create({ model: MODEL, prompt: [ids, testTokens(9, 4)], max_tokens: 4, temperature: 0 });
    expect(batch.usage?.prompt_tokens).toBe(15);
    expect(batch.choices[0].text).toBe(single.choices[0].text);
  });

  it('returns logprobs equal to the log-softmax of the model logits, with the sampled token listed', async () => {
    const prompt = testTokens(7, 11);
    const completion = await served.client.completions.create({ model: MODEL, prompt, max_tokens: 6, temperature: 0, logprobs: 2 });
    const logprobs = completion.choices[0].logprobs;
    const opened = await openRunner(served.test.tiny, 'fp32');
    try {
      const reference = await greedyWithLogits(opened, prompt, 6);
      expect(logprobs?.tokens).toHaveLength(6);
      reference.forEach(({ token, logprobs: row }, i) => {
        expect(logprobs?.token_logprobs?.[i]).toBeCloseTo(row[token], 4);
        const top = Object.values(logprobs?.top_logprobs?.[i] ?? {}).sort((a, b) => b - a);
        const sorted = Array.from(row).sort((a, b) => b - a);
        expect(top[0]).toBeCloseTo(sorted[0], 4);
        expect(top[1]).toBeCloseTo(sorted[1], 4);
        expect(logprobs?.tokens?.[i]).toBe(served.test.model.tokenTexts.get(token).token);
      });
    } finally {
      await opened.release();
    }
    const offsets = logprobs?.text_offset ?? [];
    expect(offsets[0]).toBe(0);
    for (let i = 1; i < offsets.length; i++) expect(offsets[i]).toBe(offsets[i - 1] + (logprobs?.tokens?.[i - 1].length ?? 0));
  });

  it('streams text_completion chunks ending in a finish chunk, a usage chunk and [DONE]', async () => {
    const body = { model: MODEL, prompt: 'Streaming test', max_tokens: 8, temperature: 0 };
    const whole = await served.client.completions.create(body);
    const payloads = await ssePayloads(
      await postJson(served.server, '/v1/completions', { ...body, stream: true, stream_options: { include_usage: true } }),
    );
    expect(payloads.pop()).toBe('[DONE]');
    const chunks = payloads.map((p) => JSON.parse(p) as OpenAI.Completion);
    for (const chunk of chunks) expect(chunk.object).toBe('text_completion');
    expect(chunks.pop()).toMatchObject({ choices: [], usage: whole.usage });
    expect(chunks.pop()?.choices[0]).toMatchObject({ index: 0, text: '', finish_reason: 'length' });
    expect(chunks.map((c) => c.choices[0].text).join('')).toBe(whole.choices[0].text);

    const stream = await served.client.completions.create({ ...body, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(whole.choices[0].text);
  });

  it('honours logit_bias, stop_token_ids and ignore_eos', async () => {
    const prompt = testTokens(5, 21);
    type Params = OpenAI.CompletionCreateParamsNonStreaming;
    const forced = await served.client.completions.create({
      model: MODEL,
      prompt,
      max_tokens: 2,
      temperature: 0,
      logit_bias: { '3': 100 },
    });
    // Token 3 is the byte <0x00>: two of them decode to two NUL characters.
    expect(forced.choices[0].text).toBe('\0\0');
    const byStopId = await served.client.completions.create({
      model: MODEL,
      prompt,
      max_tokens: 5,
      temperature: 0,
      logit_bias: { '3': 100 },
      stop_token_ids: [3],
    } as Params);
    expect(byStopId.choices[0]).toMatchObject({ text: '', finish_reason: 'stop' });
    expect(byStopId.usage?.completion_tokens).toBe(1);
    // Token 2 is EOS: it ends generation unless ignore_eos is set.
    const eos = await served.client.completions.create({ model: MODEL, prompt, max_tokens: 5, temperature: 0, logit_bias: { '2': 100 } });
    expect(eos.choices[0]).toMatchObject({ text: '', finish_reason: 'stop' });
    expect(eos.usage?.completion_tokens).toBe(1);
    const pastEos = await served.client.completions.create({
      model: MODEL,
      prompt,
      max_tokens: 5,
      temperature: 0,
      logit_bias: { '2': 100 },
      ignore_eos: true,
    } as Params);
    expect(pastEos.choices[0]).toMatchObject({ text: '', finish_reason: 'length' });
    expect(pastEos.usage?.completion_tokens).toBe(5);
  });

  it('honours top_k, top_p and min_p: each at its tightest turns sampling into greedy', async () => {
    const body = { model: MODEL, prompt: testTokens(5, 8), max_tokens: 12 };
    const greedy = (await served.client.completions.create({ ...body, temperature: 0 })).choices[0].text;
    const sampled = (await served.client.completions.create({ ...body, temperature: 1.5, seed: 3 })).choices[0].text;
    expect(sampled).not.toBe(greedy);
    for (const tight of [{ top_k: 1 }, { top_p: 0 }, { min_p: 1 }]) {
      const completion = await served.client.completions.create({
        ...body,
        temperature: 1.5,
        seed: 3,
        ...tight,
      } as OpenAI.CompletionCreateParamsNonStreaming);
      expect(completion.choices[0].text).toBe(greedy);
    }
  });

  it('applies frequency and presence penalties to generated tokens', async () => {
    // logit_bias +100 makes token 3 (<0x00>, text "\0") win every step; frequency_penalty
    // takes 2 off per repeat until another token wins; presence_penalty takes 2 off once.
    const leadingNuls = async (penalties: object): Promise<number> => {
      const body = { model: MODEL, prompt: testTokens(4, 1), max_tokens: 80, temperature: 0, logit_bias: { '3': 100 }, ...penalties };
      const completion = await served.client.completions.create(body);
      return /^\0*/.exec(completion.choices[0].text)?.[0].length ?? 0;
    };
    expect(await leadingNuls({})).toBe(80);
    expect(await leadingNuls({ presence_penalty: 2 })).toBe(80);
    const withFrequency = await leadingNuls({ frequency_penalty: 2 });
    expect(withFrequency).toBeGreaterThan(20);
    expect(withFrequency).toBeLessThan(80);
    expect(await leadingNuls({ frequency_penalty: 2, presence_penalty: 2 })).toBe(withFrequency - 1);
  });

  it('rejects a prompt that fills the context, naming the prompt', async () => {
    const tooLong = served.client.completions.create({ model: MODEL, prompt: testTokens(served.test.model.maxModelLen, 1), max_tokens: 1 });
    await expect(tooLong).rejects.toMatchObject({ status: 400, param: 'prompt', code: 'context_length_exceeded' });
    const secondTooLong = served.client.completions.create({
      model: MODEL,
      prompt: [[5, 6], testTokens(served.test.model.maxModelLen, 1)],
    });
    await expect(secondTooLong).rejects.toMatchObject({ status: 400, param: 'prompt[1]' });
  });

  it('refuses text that cannot fit before tokenising it (slow, on the main thread), so a huge prompt stalls nobody', async () => {
    // No token of the test tokenizer stands for more than 16 characters; the bound allows a
    // normaliser to shrink text 4x on top.
    const limit = served.test.model.maxModelLen * 16 * 4;
    const huge = 'word '.repeat(Math.ceil((limit + 1) / 5));
    const tooLong = served.client.completions.create({ model: MODEL, prompt: huge, max_tokens: 1 });
    await expect(tooLong).rejects.toMatchObject({ status: 400, param: 'prompt', code: 'context_length_exceeded' });
    const tokenize = await postJson(served.server, '/tokenize', { prompt: huge });
    expect(tokenize.status).toBe(400);
    // Counted in characters, not tokens: refused before the tokenizer saw it.
    expect(await tokenize.json()).toMatchObject({
      error: { code: 'context_length_exceeded', message: expect.stringContaining(`${huge.length} characters`) },
    });
  });
});
