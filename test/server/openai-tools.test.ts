// Tool calling and structured outputs as users use them: the official `openai` client against
// the tiny random-weight model served for real (its shipped template writes Hermes-style
// <tool_call> markup). Random weights never write a valid call or schema-valid JSON by
// chance, so every valid one here was made by constrained decoding.
import { zodResponseFormat } from 'openai/helpers/zod';
import type { ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MODEL, postJson, serveTinyModel } from './helpers.ts';

const CITIES = ['Paris', 'Tokyo', 'Lima'] as const;
const WEATHER: ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The forecast for a city',
    parameters: {
      type: 'object',
      properties: { city: { enum: CITIES }, days: { type: 'integer', minimum: 1, maximum: 7 } },
      required: ['city', 'days'],
      additionalProperties: false,
    },
  },
};
const TIME: ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_time',
    parameters: { type: 'object', properties: { tz: { enum: ['UTC', 'CET'] } }, required: ['tz'], additionalProperties: false },
  },
};
const TOOLS = [WEATHER, TIME];
const ASK: ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris for the next 3 days?' }];
// Most tests ask for one call: with parallel calls allowed, a random model can go on calling
// until max_tokens (the grammar allows any number of calls).

function expectWeatherArguments(args: string): void {
  const value = JSON.parse(args) as { city: string; days: number };
  expect(Object.keys(value).sort()).toEqual(['city', 'days']);
  expect(CITIES).toContain(value.city);
  expect(Number.isInteger(value.days) && value.days >= 1 && value.days <= 7).toBe(true);
}

describe('tools and structured outputs through the openai client', () => {
  const served = serveTinyModel();

  it('tool_choice "required": a valid call, finish_reason tool_calls, and a round trip with the result', async () => {
    const { client, server } = served;
    const first = await client.chat.completions.create({
      model: MODEL,
      messages: ASK,
      tools: TOOLS,
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_tokens: 96,
      seed: 1,
    });
    const choice = first.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    const calls = choice.message.tool_calls ?? [];
    expect(calls).toHaveLength(1);
    const call = calls[0];
    if (call.type !== 'function') throw new Error('not a function call');
    expect(call.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
    expect(['get_weather', 'get_time']).toContain(call.function.name);
    const args = JSON.parse(call.function.arguments) as Record<string, unknown>;
    if (call.function.name === 'get_weather') expectWeatherArguments(call.function.arguments);
    else expect(['UTC', 'CET']).toContain(args.tz);

    const history: ChatCompletionMessageParam[] = [
      ...ASK,
      choice.message,
      { role: 'tool', tool_call_id: call.id, content: '{"forecast": "sunny"}' },
    ];
    const second = await client.chat.completions.create({ model: MODEL, messages: history, tools: TOOLS, max_tokens: 4 });
    expect(second.choices[0].message.role).toBe('assistant');
    // The template rendered the call and its result into the prompt.
    const tokenized = (await (await postJson(server, '/tokenize', { messages: history, tools: TOOLS })).json()) as {
      count: number;
      tokens: number[];
    };
    expect(second.usage?.prompt_tokens).toBe(tokenized.count);
    const prompt = ((await (await postJson(server, '/detokenize', { tokens: tokenized.tokens })).json()) as { prompt: string }).prompt;
    expect(prompt).toContain(`<tool_call>\n{"name": "${call.function.name}", "arguments": ${call.function.arguments}}\n</tool_call>`);
    expect(prompt).toContain('<tool_response>\n{"forecast": "sunny"}\n</tool_response>');
    expect(prompt).toContain('"name": "get_time"'); // the tools are listed
  });

  it('a named tool_choice calls that function, with arguments valid for its schema', async () => {
    for (const seed of [2, 3]) {
      const reply = await served.client.chat.completions.create({
        model: MODEL,
        messages: ASK,
        tools: TOOLS,
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        parallel_tool_calls: false,
        max_tokens: 96,
        seed,
      });
      const call = reply.choices[0].message.tool_calls?.[0];
      if (call?.type !== 'function') throw new Error('no function call');
      expect(call.function.name).toBe('get_weather');
      expectWeatherArguments(call.function.arguments);
    }
  });

  it('streams tool calls as OpenAI deltas that the client reassembles, no markup in content', async () => {
    const stream = await served.client.chat.completions.create({
      model: MODEL,
      messages: ASK,
      tools: TOOLS,
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_tokens: 96,
      seed: 4,
      stream: true,
    });
    let content = '';
    const deltas: Array<{ index: number; id?: string; name?: string; arguments?: string }> = [];
    let finishReason: string | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice === undefined) continue;
      content += choice.delta.content ?? '';
      for (const d of choice.delta.tool_calls ?? [])
        deltas.push({ index: d.index, id: d.id, name: d.function?.name, arguments: d.function?.arguments });
      finishReason = choice.finish_reason ?? finishReason;
    }
    expect(content).not.toContain('<tool_call>');
    expect(finishReason).toBe('tool_calls');
    expect(deltas[0].id).toMatch(/^call_/);
    expect(deltas[0].name).toMatch(/^get_(weather|time)$/);
    expect(deltas.slice(1).every((d) => d.id === undefined && d.name === undefined)).toBe(true);
    expect(deltas.length).toBeGreaterThan(2); // the arguments come in pieces
    const args = deltas
      .filter((d) => d.index === 0)
      .map((d) => d.arguments ?? '')
      .join('');
    expect(() => JSON.parse(args) as unknown).not.toThrow();

    // The client's own helper reassembles the same stream into a completion.
    const runner = served.client.chat.completions.stream({
      model: MODEL,
      messages: ASK,
      tools: TOOLS,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      parallel_tool_calls: false,
      max_tokens: 96,
      seed: 5,
    });
    const final = await runner.finalChatCompletion();
    const call = final.choices[0].message.tool_calls?.[0];
    if (call?.type !== 'function') throw new Error('no function call');
    expect(call.function.name).toBe('get_weather');
    expectWeatherArguments(call.function.arguments);
  });

  it('chat.completions.parse with a zod schema gives a schema-valid parsed object', async () => {
    const Forecast = z.object({ city: z.enum(CITIES), days: z.number().int().min(1).max(7), sunny: z.boolean() });
    for (const seed of [1, 2]) {
      const completion = await served.client.chat.completions.parse({
        model: MODEL,
        messages: [{ role: 'user', content: 'Forecast as JSON' }],
        response_format: zodResponseFormat(Forecast, 'forecast'),
        max_tokens: 64,
        seed,
      });
      const message = completion.choices[0].message;
      expect(completion.choices[0].finish_reason).toBe('stop');
      expect(Forecast.parse(message.parsed)).toEqual(message.parsed);
    }
  });

  it('response_format json_object gives parseable JSON; without it the same request does not', async () => {
    // json_object bounds no string's length: with random weights a string can run past
    // max_tokens (seed 7 here does), so the seed is one whose object closes.
    const body = { model: MODEL, messages: [{ role: 'user' as const, content: 'JSON please' }], max_tokens: 128, seed: 2 };
    const json = await served.client.chat.completions.create({ ...body, response_format: { type: 'json_object' } });
    expect(json.choices[0].finish_reason).toBe('stop');
    expect(typeof JSON.parse(json.choices[0].message.content ?? '')).toBe('object');
    const free = await served.client.chat.completions.create(body);
    expect(() => JSON.parse(free.choices[0].message.content ?? '') as unknown).toThrow();
  });

  it('vLLM extensions: a regex and a choice, on chat and completions', async () => {
    const regex = await served.client.chat.completions.create({
      model: MODEL,
      messages: ASK,
      max_tokens: 16,
      // @ts-expect-error vLLM's field, not in the client's types
      structured_outputs: { regex: '(sunny|rainy), [0-9]{1,2} degrees' },
    });
    expect(regex.choices[0].message.content).toMatch(/^(sunny|rainy), [0-9]{1,2} degrees$/);
    const choice = await served.client.completions.create({
      model: MODEL,
      prompt: 'The answer is',
      max_tokens: 8,
      // @ts-expect-error vLLM's field
      guided_choice: ['yes', 'no'],
    });
    expect(['yes', 'no']).toContain(choice.choices[0].text);
  });

  it('a schema the engine cannot compile is a 400 naming the field', async () => {
    const error = await served.client.chat.completions
      .create({
        model: MODEL,
        messages: ASK,
        response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'objec' } } },
      })
      .catch((err: unknown) => err);
    expect(error).toMatchObject({ status: 400, param: 'response_format.json_schema.schema' });
    expect(String((error as Error).message)).toMatch(/Unsupported type "objec"/);
    const tools = await served.client.chat.completions
      .create({
        model: MODEL,
        messages: ASK,
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'nope' } } } } }],
        tool_choice: 'required',
      })
      .catch((err: unknown) => err);
    expect(tools).toMatchObject({ status: 400, param: 'tools' });
  });

  it('tool_choice "auto" parses freely: random text stays content', async () => {
    const reply = await served.client.chat.completions.create({ model: MODEL, messages: ASK, tools: TOOLS, max_tokens: 12, seed: 3 });
    expect(reply.choices[0].message.tool_calls ?? []).toEqual([]);
    expect(reply.choices[0].finish_reason).toBe('length');
    expect(typeof reply.choices[0].message.content).toBe('string');
  });
});
