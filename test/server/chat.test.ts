// /v1/chat/completions through the official `openai` client against a real listening server.
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { MODEL, postJson, serveTinyModel, ssePayloads } from './helpers.ts';

const MESSAGES: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name three colours.' },
];

/** Byte-fallback token id of one byte in the bundled Llama tokenizer (<0x00> is id 3). */
const byteToken = (byte: number): number => 3 + byte;
/** U+1F600 is F0 9F 98 80: four byte tokens, one character. */
const GRIN_BYTES = [0xf0, 0x9f, 0x98, 0x80];

describe('chat completions over HTTP with the openai client', () => {
  const served = serveTinyModel();

  async function promptTokenCount(messages: OpenAI.ChatCompletionMessageParam[]): Promise<number> {
    const response = await postJson(served.server, '/tokenize', { messages });
    return ((await response.json()) as { count: number }).count;
  }

  it('answers with one assistant message, finish_reason length at max_tokens, and exact usage', async () => {
    const completion = await served.client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 7, temperature: 0 });
    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.model).toBe(MODEL);
    expect(completion.choices).toHaveLength(1);
    const [choice] = completion.choices;
    expect(choice.message.role).toBe('assistant');
    expect(typeof choice.message.content).toBe('string');
    expect(choice.message.content?.length).toBeGreaterThan(0);
    expect(choice.finish_reason).toBe('length');
    expect(choice.logprobs).toBeNull();
    const promptTokens = await promptTokenCount(MESSAGES);
    expect(completion.usage).toEqual({
      prompt_tokens: promptTokens,
      completion_tokens: 7,
      total_tokens: promptTokens + 7,
      prompt_tokens_details: { cached_tokens: 0 },
    });
  });

  it('renders the template with BOS once: the prompt starts with one <s>', async () => {
    const response = await postJson(served.server, '/tokenize', { messages: MESSAGES, return_token_strs: true });
    const { tokens, token_strs } = (await response.json()) as { tokens: number[]; token_strs: string[] };
    expect(tokens[0]).toBe(1);
    expect(tokens.filter((t) => t === 1)).toHaveLength(1);
    expect(token_strs.join('')).toContain('Assistant:');
  });

  it('accepts content as an array of text parts, equal to the joined string', async () => {
    const parts = await promptTokenCount([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Hello' },
          { type: 'text', text: 'there' },
        ],
      },
    ]);
    const joined = await promptTokenCount([{ role: 'user', content: 'Hello\nthere' }]);
    expect(parts).toBe(joined);
  });

  it('streams exactly as OpenAI: role first, content deltas, finish chunk, usage chunk, [DONE]', async () => {
    const body = { model: MODEL, messages: MESSAGES, max_tokens: 9, temperature: 0 };
    const whole = await served.client.chat.completions.create(body);
    const response = await postJson(served.server, '/v1/chat/completions', {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const payloads = await ssePayloads(response);
    expect(payloads[payloads.length - 1]).toBe('[DONE]');
    const chunks = payloads.slice(0, -1).map((p) => JSON.parse(p) as OpenAI.ChatCompletionChunk);
    for (const chunk of chunks) expect(chunk).toMatchObject({ object: 'chat.completion.chunk', id: chunks[0].id, model: MODEL });
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const usageChunk = chunks[chunks.length - 1];
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual(whole.usage);
    const finish = chunks[chunks.length - 2];
    expect(finish.choices[0]).toMatchObject({ index: 0, delta: {}, finish_reason: 'length' });
    const content = chunks.slice(1, -2);
    for (const chunk of content) {
      expect(chunk.choices[0].finish_reason).toBeNull();
      expect(chunk.usage).toBeNull();
    }
    expect(content.map((c) => c.choices[0].delta.content).join('')).toBe(whole.choices[0].message.content);
  });

  it('streams through the client library the same text as without streaming', async () => {
    const body = { model: MODEL, messages: MESSAGES, max_tokens: 6, temperature: 0 };
    const whole = await served.client.chat.completions.create(body);
    const stream = await served.client.chat.completions.create({ ...body, stream: true });
    let text = '';
    let finishReason: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    }
    expect(text).toBe(whole.choices[0].message.content);
    expect(finishReason).toBe('length');
  });

  it('returns logprobs with top_logprobs, sorted, the greedy token first, one entry per token', async () => {
    const completion = await served.client.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      max_tokens: 5,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const entries = completion.choices[0].logprobs?.content ?? [];
    expect(entries).toHaveLength(5);
    for (const entry of entries) {
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.top_logprobs).toHaveLength(3);
      // Greedy picks the most likely token of the raw distribution.
      expect(entry.top_logprobs[0]).toEqual({ token: entry.token, logprob: entry.logprob, bytes: entry.bytes });
      const values = entry.top_logprobs.map((t) => t.logprob);
      expect([...values].sort((a, b) => b - a)).toEqual(values);
      expect(values.reduce((sum, v) => sum + Math.exp(v), 0)).toBeLessThanOrEqual(1 + 1e-6);
    }
    const text = Buffer.concat(entries.map((e) => Buffer.from(e.bytes ?? []))).toString('utf8');
    expect(text).toBe(completion.choices[0].message.content);
  });

  it('repeats itself for the same seed, and n choices get different seeds', async () => {
    const body = { model: MODEL, messages: MESSAGES, max_tokens: 12, temperature: 1.0, seed: 1234 };
    const first = await served.client.chat.completions.create(body);
    const second = await served.client.chat.completions.create(body);
    expect(second.choices[0].message.content).toBe(first.choices[0].message.content);
    const other = await served.client.chat.completions.create({ ...body, seed: 99 });
    expect(other.choices[0].message.content).not.toBe(first.choices[0].message.content);

    const many = await served.client.chat.completions.create({ ...body, n: 3 });
    expect(many.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(new Set(many.choices.map((c) => c.message.content)).size).toBe(3);
    const promptTokens = many.usage?.prompt_tokens ?? 0;
    expect(promptTokens).toBe(first.usage?.prompt_tokens);
    expect(many.usage?.completion_tokens).toBe(36);
  });

  it('ends at a stop string without emitting any of it, streaming or not', async () => {
    const base = { model: MODEL, messages: MESSAGES, max_tokens: 40, temperature: 0 };
    const full = (await served.client.chat.completions.create(base)).choices[0].message.content ?? '';
    const stop = full.slice(10, 16);
    const expected = full.slice(0, full.indexOf(stop));
    const stopped = await served.client.chat.completions.create({ ...base, stop: ['never-appears', stop] });
    expect(stopped.choices[0].message.content).toBe(expected);
    expect(stopped.choices[0].finish_reason).toBe('stop');

    const stream = await served.client.chat.completions.create({ ...base, stop, stream: true });
    const deltas: string[] = [];
    let finishReason: string | null = null;
    for await (const chunk of stream) {
      deltas.push(chunk.choices[0]?.delta.content ?? '');
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    }
    expect(deltas.join('')).toBe(expected);
    expect(finishReason).toBe('stop');
  });

  it('never splits a character across chunks: four byte tokens arrive as one emoji', async () => {
    // logit_bias ranks the four bytes; repetition_penalty divides each one's logit once it
    // has been generated, so greedy decoding walks F0, 9F, 98, 80 in order.
    const logitBias = Object.fromEntries(GRIN_BYTES.map((b, i) => [String(byteToken(b)), 100 - 15 * i]));
    const body = {
      model: MODEL,
      messages: MESSAGES,
      max_tokens: 4,
      temperature: 0,
      logit_bias: logitBias,
      repetition_penalty: 4,
      logprobs: true,
    };
    const whole = await served.client.chat.completions.create(body);
    expect(whole.choices[0].message.content).toBe('\u{1F600}');
    expect(whole.choices[0].logprobs?.content?.map((e) => e.bytes)).toEqual(GRIN_BYTES.map((b) => [b]));
    expect(whole.choices[0].logprobs?.content?.[0].token).toBe('\\xf0');

    const stream = await served.client.chat.completions.create({ ...body, stream: true });
    const contents: string[] = [];
    let numLogprobs = 0;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.content;
      if (delta) contents.push(delta);
      numLogprobs += chunk.choices[0]?.logprobs?.content?.length ?? 0;
    }
    expect(contents).toEqual(['\u{1F600}']);
    expect(numLogprobs).toBe(4);
  });

  it('surfaces our errors through the client: status, message naming the field, param', async () => {
    const badTemperature = served.client.chat.completions.create({ model: MODEL, messages: MESSAGES, temperature: 3 });
    await expect(badTemperature).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(badTemperature).rejects.toMatchObject({ status: 400, param: 'temperature', type: 'invalid_request_error' });
    await expect(badTemperature).rejects.toThrow(/'temperature'/);

    const unknownModel = served.client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
    await expect(unknownModel).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(unknownModel).rejects.toThrow(/gpt-4o/);

    const empty = served.client.chat.completions.create({ model: MODEL, messages: [], stream: true });
    await expect(empty).rejects.toMatchObject({ status: 400, param: 'messages' });
  });
});
