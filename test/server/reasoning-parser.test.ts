// <think> reasoning split from content, streamed: the same split whether the output comes
// whole, cut at any byte, in any three pieces or a code point at a time.
import { describe, expect, it } from 'vitest';
import { promptOpensReasoning, ReasoningParser, reasoningParserFor, type ReasoningEvent } from '../../server/openai/reasoning-parser.ts';
import { codePointDeltas, splitsAtEveryByte, splitsIntoThree } from '../helpers/stream-splits.ts';

interface Case {
  title: string;
  startsInReasoning: boolean;
  output: string;
  reasoning: string | null;
  content: string;
}

const cases: Case[] = [
  {
    title: 'Qwen3 thinking on: the model opens <think> itself',
    startsInReasoning: false,
    output: '<think>\nThe user greets me. Reply warmly.\n</think>\n\nHello! 😀 How can I help?',
    reasoning: 'The user greets me. Reply warmly.',
    content: 'Hello! 😀 How can I help?',
  },
  {
    title: 'DeepSeek-R1: the template opened <think>, output starts inside it',
    startsInReasoning: true,
    output: 'Okay, 2+2.\nThat is 4.\n</think>\n\nThe answer is **4**.',
    reasoning: 'Okay, 2+2.\nThat is 4.',
    content: 'The answer is **4**.',
  },
  {
    title: 'DeepSeek-R1 cut off by max_tokens: all reasoning',
    startsInReasoning: true,
    output: 'Still weighing </thin',
    reasoning: 'Still weighing </thin',
    content: '',
  },
  {
    title: 'no reasoning: text that only starts like a tag',
    startsInReasoning: false,
    output: '<thinking> is not a tag, nor is </think> here',
    reasoning: null,
    content: '<thinking> is not a tag, nor is </think> here',
  },
  {
    title: 'empty thinking block',
    startsInReasoning: false,
    output: '<think>\n\n</think>\n\nHi',
    reasoning: '',
    content: 'Hi',
  },
];

function run(c: Case, deltas: readonly string[]): { streamed: { reasoning: string; content: string }; parser: ReasoningParser } {
  const parser = new ReasoningParser({ startsInReasoning: c.startsInReasoning });
  const events: ReasoningEvent[] = [];
  for (const delta of deltas) events.push(...parser.feed(delta));
  events.push(...parser.finish());
  const streamed = { reasoning: '', content: '' };
  for (const event of events) streamed[event.type === 'reasoning' ? 'reasoning' : 'content'] += event.text;
  return { streamed, parser };
}

function check(c: Case, deltas: readonly string[]): void {
  const { streamed, parser } = run(c, deltas);
  const where = JSON.stringify(deltas);
  expect(parser.result(), where).toEqual({ reasoning: c.reasoning, content: c.content });
  expect(streamed, where).toEqual({ reasoning: c.reasoning ?? '', content: c.content });
}

describe.each(cases)('reasoning parser: $title', (c) => {
  it('whole', () => check(c, [c.output]));
  it('at every byte cut', () => {
    for (const deltas of splitsAtEveryByte(c.output)) check(c, deltas);
  });
  it('a code point at a time', () => check(c, codePointDeltas(c.output)));
  it('at every cut into three pieces', () => {
    for (const deltas of splitsIntoThree(c.output)) check(c, deltas);
  });
});

describe('when reasoning applies', () => {
  it('sees whether the prompt left <think> open', () => {
    expect(promptOpensReasoning('<｜User｜>2+2?<｜Assistant｜><think>\n')).toBe(true);
    expect(promptOpensReasoning('<|im_start|>assistant\n<think>\n\n</think>\n\n')).toBe(false);
    expect(promptOpensReasoning('<|im_start|>assistant\n')).toBe(false);
  });

  it('is off when chat_template_kwargs turn thinking off', () => {
    expect(reasoningParserFor('x', { enable_thinking: false })).toBeNull();
    expect(reasoningParserFor('x', { thinking: false })).toBeNull();
    expect(reasoningParserFor('x', {})).toBeInstanceOf(ReasoningParser);
  });
});
