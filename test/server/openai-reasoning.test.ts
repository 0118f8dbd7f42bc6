// Reasoning output through the official client and the WebSocket: a tiny model whose chat
// template opens a <think> block DeepSeek-R1 style, so the reasoning parser (auto: the
// template writes <think>) puts the model's text into reasoning_content until </think>;
// chat_template_kwargs {"enable_thinking": false} reach the template and turn it off.
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { THINKING_CHAT_TEMPLATE, useChatTemplate } from '../helpers/chat-templates.ts';
import { MODEL, postJson, serveTinyModel } from './helpers.ts';

interface ChatMessageBody {
  content: string | null;
  reasoning_content?: string;
  tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
}

interface ChatBody {
  choices: Array<{ message: ChatMessageBody; finish_reason: string }>;
}

const ASK = [{ role: 'user', content: 'Think first.' }];

/** Runs one request over the WebSocket and returns its events, up to response.done or error. */
async function wsEvents(url: string, request: object): Promise<Array<Record<string, unknown>>> {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/ws`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const events: Array<Record<string, unknown>> = [];
  const done = new Promise<void>((resolve) =>
    socket.on('message', (data: Buffer) => {
      const event = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      events.push(event);
      if (event.type === 'response.done' || event.type === 'error') resolve();
    }),
  );
  socket.send(JSON.stringify({ type: 'response.create', id: 'r1', request }));
  await done;
  socket.close();
  return events;
}

describe('reasoning output', () => {
  const served = serveTinyModel({}, {}, (dir) => useChatTemplate(dir, THINKING_CHAT_TEMPLATE));

  it('the text before </think> is reasoning_content, streamed as delta.reasoning_content', async () => {
    const reply = (await (
      await postJson(served.server, '/v1/chat/completions', { messages: ASK, max_tokens: 12, seed: 1 })
    ).json()) as ChatBody;
    const message = reply.choices[0].message;
    expect(message.reasoning_content?.length).toBeGreaterThan(0);
    expect(message.content).toBe('');

    const stream = await served.client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Think first.' }],
      max_tokens: 12,
      seed: 1,
      stream: true,
    });
    let reasoning = '';
    let content = '';
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as { content?: string | null; reasoning_content?: string } | undefined;
      reasoning += delta?.reasoning_content ?? '';
      content += delta?.content ?? '';
    }
    expect(reasoning).toBe(message.reasoning_content);
    expect(content).toBe('');
  });

  it('chat_template_kwargs reach the template: enable_thinking false makes it all content', async () => {
    const body = { messages: ASK, max_tokens: 12, seed: 1, chat_template_kwargs: { enable_thinking: false } };
    const reply = (await (await postJson(served.server, '/v1/chat/completions', body)).json()) as ChatBody;
    expect(reply.choices[0].message.reasoning_content).toBeUndefined();
    expect(reply.choices[0].message.content?.length).toBeGreaterThan(0);
    const tokenized = (await (
      await postJson(served.server, '/tokenize', { messages: ASK, chat_template_kwargs: { enable_thinking: false } })
    ).json()) as {
      tokens: number[];
    };
    const prompt = ((await (await postJson(served.server, '/detokenize', { tokens: tokenized.tokens })).json()) as { prompt: string })
      .prompt;
    expect(prompt).toMatch(/<think>\s*<\/think>\s*$/);
  });

  it('over the WebSocket: reasoning and tool-call deltas as their own events, the response whole', async () => {
    const tools = [
      {
        type: 'function',
        function: { name: 'lookup', parameters: { type: 'object', properties: { q: { enum: ['a', 'b'] } }, required: ['q'] } },
      },
    ];
    const events = await wsEvents(served.server.url, {
      messages: ASK,
      tools,
      tool_choice: 'required',
      // One call: with parallel calls a random model can go on calling until max_tokens.
      parallel_tool_calls: false,
      max_tokens: 128,
      seed: 2,
      chat_template_kwargs: { enable_thinking: false },
    });
    const types = new Set(events.map((e) => e.type));
    expect(types).toContain('response.tool_calls.delta');
    const done = events.at(-1) as { type: string; response: ChatBody };
    expect(done.type).toBe('response.done');
    const call = done.response.choices[0].message.tool_calls?.[0];
    expect(call?.function.name).toBe('lookup');
    expect(['a', 'b']).toContain((JSON.parse(call?.function.arguments ?? '') as { q: string }).q);
    expect(done.response.choices[0].finish_reason).toBe('tool_calls');
    const first = events.find((e) => e.type === 'response.tool_calls.delta') as { tool_calls: Array<{ id: string }> };
    expect(first.tool_calls[0].id).toBe(call?.id);

    const thinking = await wsEvents(served.server.url, { messages: ASK, max_tokens: 6, seed: 1 });
    expect(thinking.some((e) => e.type === 'response.reasoning_text.delta')).toBe(true);
    expect(thinking.some((e) => e.type === 'response.output_text.delta')).toBe(false);
  });

  it('a thinking model under response_format thinks freely first: nothing constrains it before </think>', async () => {
    const body = { messages: ASK, max_tokens: 10, temperature: 0, response_format: { type: 'json_object' } };
    const reply = (await (await postJson(served.server, '/v1/chat/completions', body)).json()) as ChatBody;
    const free = (await (
      await postJson(served.server, '/v1/chat/completions', { ...body, response_format: undefined })
    ).json()) as ChatBody;
    expect(reply.choices[0].message.reasoning_content).toBe(free.choices[0].message.reasoning_content);
  });
});
