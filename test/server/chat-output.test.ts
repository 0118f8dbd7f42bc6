// One chat choice's text through the reasoning parser and then the tool-call parser, as the
// streaming and whole responses read it: reasoning_content, content and tool_calls come out
// the same wherever the stream was cut, and markup never reaches content.
import { describe, expect, it } from 'vitest';
import { type ChatDelta, type ChatOutputOptions, ChoiceOutput } from '../../server/openai/chat-output.ts';
import { codePointDeltas, splitsAtEveryByte } from '../helpers/stream-splits.ts';

interface Rebuilt {
  reasoning: string;
  content: string;
  calls: Array<{ id: string; name: string; arguments: string }>;
}

/** What a client rebuilds from the deltas (ids and names first, arguments appended). */
function rebuild(deltas: ChatDelta[]): Rebuilt {
  const out: Rebuilt = { reasoning: '', content: '', calls: [] };
  for (const delta of deltas) {
    out.reasoning += delta.reasoning_content ?? '';
    out.content += delta.content ?? '';
    for (const call of delta.tool_calls ?? []) {
      if (call.index === out.calls.length) out.calls.push({ id: call.id ?? '', name: call.function.name ?? '', arguments: '' });
      out.calls[call.index].arguments += call.function.arguments ?? '';
    }
  }
  return out;
}

function stream(options: ChatOutputOptions, pieces: readonly string[]): { rebuilt: Rebuilt; output: ChoiceOutput } {
  const output = new ChoiceOutput(options);
  const deltas = pieces.flatMap((piece) => output.feed(piece));
  deltas.push(...output.finish());
  return { rebuilt: rebuild(deltas), output };
}

const THINKING_TOOLS: ChatOutputOptions = {
  tools: { parser: 'hermes', toolNames: ['get_weather'] },
  reasoning: { startsInReasoning: false },
};
const ARGS = '{"city": "Zürich"}';
const OUTPUT = `<think>\nThe user wants the weather.\n</think>\n\nLet me look.\n<tool_call>\n{"name": "get_weather", "arguments": ${ARGS}}\n</tool_call>`;

describe('chat output: reasoning, then tool calls', () => {
  it('splits a thinking turn with a call the same at every byte cut and one character at a time', () => {
    for (const pieces of [...splitsAtEveryByte(OUTPUT), codePointDeltas(OUTPUT)]) {
      const { rebuilt, output } = stream(THINKING_TOOLS, pieces);
      expect(rebuilt.reasoning).toBe('The user wants the weather.');
      expect(rebuilt.content).toBe('Let me look.\n');
      expect(rebuilt.calls).toEqual([{ id: expect.stringMatching(/^call_/) as string, name: 'get_weather', arguments: ARGS }]);
      const message = output.result();
      expect(message).toMatchObject({ content: 'Let me look.\n', reasoningContent: 'The user wants the weather.' });
      expect(message.toolCalls[0]).toMatchObject({ id: rebuilt.calls[0].id, function: { name: 'get_weather', arguments: ARGS } });
    }
  });

  it('a turn of calls alone has null content; markup inside the reasoning is reasoning', () => {
    const text = `<think><tool_call> is how I call</think><tool_call>\n{"name": "get_weather", "arguments": ${ARGS}}\n</tool_call>`;
    const { rebuilt, output } = stream(THINKING_TOOLS, [text]);
    expect(rebuilt.reasoning).toBe('<tool_call> is how I call');
    expect(rebuilt.content).toBe('');
    expect(output.result().content).toBeNull();
    expect(output.result().toolCalls).toHaveLength(1);
  });

  it('a call to a function the request did not offer, or a malformed one, is content', () => {
    const unknown = '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>';
    expect(stream(THINKING_TOOLS, [unknown]).rebuilt).toMatchObject({ content: unknown, calls: [] });
    const broken = '<tool_call>\n{"name": "get_weather", "arguments": {"city": </tool_call>';
    const { rebuilt, output } = stream(THINKING_TOOLS, codePointDeltas(broken));
    expect(rebuilt.content).toBe(broken);
    expect(output.result()).toMatchObject({ content: broken, toolCalls: [] });
  });

  it('parallel_tool_calls false under tool_choice auto: only the first of several calls comes out, streamed or whole', () => {
    const call = (name: string) => `<tool_call>\n{"name": "${name}", "arguments": ${ARGS}}\n</tool_call>`;
    const text = `${call('get_weather')}\n${call('get_time')}`;
    const tools = { parser: 'hermes' as const, toolNames: ['get_weather', 'get_time'] };
    for (const pieces of [[text], codePointDeltas(text)]) {
      const single = stream({ tools: { ...tools, firstCallOnly: true }, reasoning: null }, pieces);
      expect(single.rebuilt.calls.map((c) => c.name)).toEqual(['get_weather']);
      expect(single.output.result().toolCalls.map((c) => c.function.name)).toEqual(['get_weather']);
      expect(single.rebuilt.content.trim()).toBe('');
      const parallel = stream({ tools, reasoning: null }, pieces);
      expect(parallel.output.result().toolCalls.map((c) => c.function.name)).toEqual(['get_weather', 'get_time']);
    }
  });

  it('a prompt that opened the reasoning makes everything reasoning until its end tag', () => {
    const { rebuilt, output } = stream({ tools: null, reasoning: { startsInReasoning: true } }, ['still thinking', ' when max_tokens hit']);
    expect(rebuilt).toEqual({ reasoning: 'still thinking when max_tokens hit', content: '', calls: [] });
    expect(output.result()).toEqual({ content: '', reasoningContent: 'still thinking when max_tokens hit', toolCalls: [] });
  });

  it('without a reasoning parser, <think> is plain content', () => {
    const { rebuilt } = stream({ tools: { parser: 'hermes', toolNames: [] }, reasoning: null }, ['<think>x</think> y']);
    expect(rebuilt).toEqual({ reasoning: '', content: '<think>x</think> y', calls: [] });
  });
});
