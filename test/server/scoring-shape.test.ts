// Scoring on the API, shaped: completions' echo (with and without logprobs, streamed, over
// the WebSocket), vLLM's prompt_logprobs on completions and chat, and usage's cached tokens,
// through app.inject against the stand-in engine, whose made-up prompt scores
// (standInScores) make every number predictable. Values against the real model are in
// scoring-model.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { standInModel, type StandInModel } from '../helpers/stand-in-engine.ts';

interface CompletionChoice {
  index: number;
  text: string;
  logprobs: {
    tokens: string[];
    token_logprobs: Array<number | null>;
    top_logprobs: Array<Record<string, number> | null>;
    text_offset: number[];
  } | null;
  prompt_logprobs?: Array<Record<string, { logprob: number; rank: number; decoded_token: string }> | null>;
}

interface Body {
  choices: CompletionChoice[];
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  prompt_logprobs?: CompletionChoice['prompt_logprobs'];
}

describe('scoring on the API (shapes, stand-in engine)', () => {
  let test: StandInModel;
  let built: App;
  const tokenText = (id: number): string => test.model.tokenTexts.get(id).token;

  beforeAll(async () => {
    test = standInModel();
    built = await buildApp({ model: test.model });
  });
  afterAll(async () => {
    await built?.app.close();
    test?.remove();
  });

  async function post(url: string, payload: object): Promise<Body> {
    const response = await built.app.inject({ method: 'POST', url, payload });
    expect(response.statusCode, response.body).toBe(200);
    return response.json<Body>();
  }

  it('echo alone puts the prompt before the text and asks the engine for no scores', async () => {
    const body = await post('/v1/completions', { prompt: 'Hello there', max_tokens: 2, echo: true });
    expect(test.engine.requests.at(-1)?.promptLogprobs).toBeNull();
    const ids = test.model.tokenizer.encode('Hello there');
    expect(body.choices[0].text).toBe(`Hello there[${ids.length}][${ids.length + 1}]`);
    expect(body.choices[0].logprobs).toBeNull();
  });

  it('echo with logprobs: the prompt tokens lead the columns, the first with null, then the generated ones', async () => {
    const prompt = [5, 6, 7, 8];
    const body = await post('/v1/completions', { prompt, max_tokens: 2, echo: true, logprobs: 2 });
    expect(test.engine.requests.at(-1)?.promptLogprobs).toEqual({ topK: 2 });
    const { logprobs, text } = body.choices[0];
    expect(text).toBe(`${test.model.tokenizer.decode(prompt)}[4][5]`);
    expect(logprobs?.tokens).toEqual([...prompt.map(tokenText), tokenText(4), tokenText(5)]);
    expect(logprobs?.token_logprobs).toEqual([null, -0.25, -0.5, -0.75, -1, -1]);
    expect(logprobs?.top_logprobs[0]).toBeNull();
    // Position 2: its token (7) and alternatives 2 and 3 (standInScores).
    expect(logprobs?.top_logprobs[2]).toEqual({ [tokenText(7)]: -0.5, [tokenText(2)]: -0.125, [tokenText(3)]: -0.25 });
    const offsets = [0];
    for (const token of logprobs!.tokens.slice(0, -1)) offsets.push(offsets.at(-1)! + token.length);
    expect(logprobs?.text_offset).toEqual(offsets);
    expect(body.usage.completion_tokens).toBe(2);
  });

  it('max_tokens 0 with echo scores the prompt and generates nothing', async () => {
    const body = await post('/v1/completions', { prompt: [5, 6, 7], max_tokens: 0, echo: true, logprobs: 0 });
    expect(test.engine.requests.at(-1)?.maxTokens).toBe(0);
    expect(body.choices[0].text).toBe(test.model.tokenizer.decode([5, 6, 7]));
    expect(body.choices[0].logprobs?.token_logprobs).toEqual([null, -0.25, -0.5]);
    expect(body.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 0, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it('streams the echoed prompt with the first chunk of each choice', async () => {
    const response = await built.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { prompt: [5, 6, 7], max_tokens: 1, echo: true, logprobs: 1, n: 2, stream: true },
    });
    const chunks = response.body
      .split('\n\n')
      .filter((e) => e.startsWith('data: {'))
      .map((e) => JSON.parse(e.slice(6)) as { choices: CompletionChoice[] });
    const texts = [0, 1].map((i) => chunks.flatMap((c) => c.choices.filter((ch) => ch.index === i).map((ch) => ch.text)).join(''));
    const prompt = test.model.tokenizer.decode([5, 6, 7]);
    expect(texts).toEqual([`${prompt}[3]`, `${prompt}[3]`]);
    const first = chunks.find((c) => c.choices[0]?.index === 0 && c.choices[0].text !== '')!.choices[0];
    expect(first.logprobs?.token_logprobs).toEqual([null, -0.25, -0.5, -1]);
  });

  it("returns vLLM's prompt_logprobs on completions, per choice: null first, then the token and the top k by id", async () => {
    const body = await post('/v1/completions', { prompt: [5, 6, 7], max_tokens: 1, prompt_logprobs: 2 });
    expect(body.choices[0].logprobs).toBeNull();
    expect(body.choices[0].text).toBe('[3]');
    expect(body.choices[0].prompt_logprobs).toEqual([
      null,
      {
        '6': { logprob: -0.25, rank: 2, decoded_token: tokenText(6) },
        '1': { logprob: -0.125, rank: 1, decoded_token: tokenText(1) },
        '2': { logprob: -0.25, rank: 2, decoded_token: tokenText(2) },
      },
      {
        '7': { logprob: -0.5, rank: 3, decoded_token: tokenText(7) },
        '2': { logprob: -0.125, rank: 1, decoded_token: tokenText(2) },
        '3': { logprob: -0.25, rank: 2, decoded_token: tokenText(3) },
      },
    ]);
  });

  it('scores once for echo and prompt_logprobs together, with the larger k', async () => {
    const body = await post('/v1/completions', { prompt: [5, 6, 7], max_tokens: 0, echo: true, logprobs: 1, prompt_logprobs: 3 });
    expect(test.engine.requests.at(-1)?.promptLogprobs).toEqual({ topK: 3 });
    expect(Object.keys(body.choices[0].logprobs!.top_logprobs[1]!)).toHaveLength(2);
    expect(Object.keys(body.choices[0].prompt_logprobs![1]!)).toHaveLength(4);
  });

  it('puts prompt_logprobs beside the choices on chat, and accepts max_tokens 0 with it', async () => {
    const body = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 0, prompt_logprobs: 0 });
    const request = test.engine.requests.at(-1)!;
    const prompt = request.prompt as number[];
    expect(body.prompt_logprobs).toHaveLength(prompt.length);
    expect(body.prompt_logprobs?.[0]).toBeNull();
    expect(body.prompt_logprobs?.[1]).toEqual({ [String(prompt[1])]: { logprob: -0.25, rank: 2, decoded_token: tokenText(prompt[1]) } });
    expect(body.choices[0]).not.toHaveProperty('prompt_logprobs');
  });

  it('reports cached tokens in usage on every response, streamed usage included', async () => {
    const body = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 });
    expect(body.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    const response = await built.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { prompt: 'a', max_tokens: 1, stream: true, stream_options: { include_usage: true } },
    });
    const usageChunk = response.body
      .split('\n\n')
      .filter((e) => e.startsWith('data: {'))
      .map((e) => JSON.parse(e.slice(6)) as { usage: Body['usage'] | null })
      .at(-1);
    expect(usageChunk?.usage?.prompt_tokens_details).toEqual({ cached_tokens: 0 });
  });

  it('echoes over the WebSocket: the first delta holds the prompt, response.done the whole body with prompt_logprobs', async () => {
    const socket = await built.app.injectWS('/v1/ws');
    const events: Array<{ type: string; delta?: string; response?: Body }> = [];
    const done = new Promise<void>((resolve) => {
      socket.on('message', (data: Buffer) => {
        const event = JSON.parse(data.toString()) as { type: string };
        events.push(event);
        if (event.type === 'response.done' || event.type === 'error') resolve();
      });
    });
    const request = { prompt: [5, 6, 7], max_tokens: 0, echo: true, prompt_logprobs: 1 };
    socket.send(JSON.stringify({ type: 'response.create', id: 'r1', endpoint: 'completions', request }));
    await done;
    socket.terminate();
    const prompt = test.model.tokenizer.decode([5, 6, 7]);
    expect(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta)).toEqual([prompt]);
    const response = events.at(-1)?.response;
    expect(response?.choices[0].text).toBe(prompt);
    expect(response?.choices[0].prompt_logprobs).toHaveLength(3);
  });
});
