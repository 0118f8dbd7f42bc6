// tool_choice enforced by constrained decoding: the structural tag for each markup accepts,
// token by token on the real vocabulary, exactly the calls its parser reads back, and refuses
// what tool_choice rules out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrammarEngine } from '../../../server/engine/grammar/grammar-engine.ts';
import { grammarVocabularyFromTokenizerJson, type GrammarVocabulary } from '../../../server/engine/grammar/grammar-vocabulary.ts';
import { createToolParser } from '../../../server/openai/tool-parsers/registry.ts';
import type { GrammarSpec } from '../../../server/engine/grammar/grammar-spec.ts';
import { structuralFormat } from '../../../server/openai/output-grammar.ts';
import { afterReasoning, toolCallGrammar, type ToolCallGrammarOptions } from '../../../server/openai/tool-parsers/tool-call-grammar.ts';
import type { ToolParserName } from '../../../server/openai/tool-parsers/types.ts';
import { greedyTokenPath } from '../../helpers/token-path.ts';
import { packagedTokenizer, type PackagedTokenizer, type PackagedTokenizerName } from '../../helpers/packaged-tokenizers.ts';

const TOOLS = [
  {
    name: 'get_weather',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
    },
  },
  { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] } },
];
const WEATHER = '{"city": "Paris", "unit": "celsius"}';
const TIME = '{"tz": "CET"}';

interface Format {
  parser: ToolParserName;
  tokenizer: PackagedTokenizerName;
  call(name: string, args: string): string;
  turn(calls: string[]): string;
}

const FORMATS: Format[] = [
  {
    parser: 'hermes',
    tokenizer: 'qwen3',
    call: (name, args) => `<tool_call>\n{"name": "${name}", "arguments": ${args}}\n</tool_call>`,
    turn: (calls) => calls.join('\n'),
  },
  {
    parser: 'deepseek_v3',
    tokenizer: 'deepseek_v3',
    call: (name, args) => `<｜tool▁call▁begin｜>function<｜tool▁sep｜>${name}\n\`\`\`json\n${args}\n\`\`\`<｜tool▁call▁end｜>`,
    turn: (calls) => `<｜tool▁calls▁begin｜>${calls.join('\n')}<｜tool▁calls▁end｜>`,
  },
  {
    parser: 'deepseek_v31',
    tokenizer: 'deepseek_v3',
    call: (name, args) => `<｜tool▁call▁begin｜>${name}<｜tool▁sep｜>${args}<｜tool▁call▁end｜>`,
    turn: (calls) => `<｜tool▁calls▁begin｜>${calls.join('')}<｜tool▁calls▁end｜>`,
  },
  {
    parser: 'mistral',
    tokenizer: 'llama2',
    call: (name, args) => `{"name": "${name}", "arguments": ${args}}`,
    turn: (calls) => `[TOOL_CALLS] [${calls.join(', ')}]`,
  },
];

describe.each(FORMATS)('$parser tool-call grammar ($tokenizer vocabulary)', (format) => {
  let t: PackagedTokenizer;
  let engine: GrammarEngine;
  let eos: number;
  let vocabulary: GrammarVocabulary;

  beforeAll(async () => {
    t = packagedTokenizer(format.tokenizer);
    eos = t.tokenizer.eosTokenId ?? -1;
    vocabulary = grammarVocabularyFromTokenizerJson(t.tokenizerJson);
    engine = await GrammarEngine.create({ vocabulary, logitsSize: t.logitsSize, stopTokenIds: [eos] });
  });
  afterAll(() => engine.dispose());

  /** Whether the grammar takes the text (longest tokens first) and can end after it. */
  async function accepts(options: Partial<ToolCallGrammarOptions>, text: string): Promise<boolean> {
    const spec = toolCallGrammar({ tools: TOOLS, parser: format.parser, choice: 'required', parallelToolCalls: true, ...options });
    const grammar = await engine.createSequenceGrammar(spec);
    try {
      for (const id of greedyTokenPath(vocabulary, text)) if (!grammar.acceptToken(id)) return false;
      await grammar.fillNextTokenMask();
      return grammar.allowedStopTokens().includes(eos);
    } finally {
      grammar.dispose();
    }
  }

  const oneCall = () => format.turn([format.call('get_weather', WEATHER)]);
  const twoCalls = () => format.turn([format.call('get_weather', WEATHER), format.call('get_time', TIME)]);

  it('required: a well-formed call is accepted, and the parser reads it back', async () => {
    expect(await accepts({}, oneCall())).toBe(true);
    const parser = createToolParser(format.parser);
    parser.feed(oneCall());
    parser.finish();
    expect(parser.result().toolCalls.map((c) => [c.function.name, c.function.arguments])).toEqual([['get_weather', WEATHER]]);
  });

  it('required: no call, a wrong argument or an unknown function is refused', async () => {
    expect(await accepts({}, '')).toBe(false);
    expect(await accepts({}, 'Sure!')).toBe(false);
    expect(await accepts({}, format.turn([format.call('get_weather', '{"city": "Paris", "unit": "kelvin"}')]))).toBe(false);
    expect(await accepts({}, format.turn([format.call('get_news', TIME)]))).toBe(false);
  });

  it('parallel_tool_calls decides whether a second call may follow', async () => {
    expect(await accepts({}, twoCalls())).toBe(true);
    expect(await accepts({ parallelToolCalls: false }, twoCalls())).toBe(false);
  });

  it('a named tool_choice allows only that function', async () => {
    expect(await accepts({ choice: { name: 'get_time' } }, format.turn([format.call('get_time', TIME)]))).toBe(true);
    expect(await accepts({ choice: { name: 'get_time' } }, oneCall())).toBe(false);
  });
});

describe('auto and reasoning (Qwen3)', () => {
  let t: PackagedTokenizer;
  let engine: GrammarEngine;
  const eos = 151645;

  beforeAll(async () => {
    t = packagedTokenizer('qwen3');
    engine = await GrammarEngine.create({
      vocabulary: grammarVocabularyFromTokenizerJson(t.tokenizerJson),
      logitsSize: t.logitsSize,
      stopTokenIds: [eos],
    });
  });
  afterAll(() => engine.dispose());

  async function accepts(options: Partial<ToolCallGrammarOptions>, text: string): Promise<boolean> {
    const spec = toolCallGrammar({ tools: TOOLS, parser: 'hermes', choice: 'auto', parallelToolCalls: true, ...options });
    const grammar = await engine.createSequenceGrammar(spec);
    try {
      for (const id of t.tokenizer.encode(text, false)) if (!grammar.acceptToken(id)) return false;
      await grammar.fillNextTokenMask();
      return grammar.allowedStopTokens().includes(eos);
    } finally {
      grammar.dispose();
    }
  }

  it('auto: free text is fine, but an opened call must be well-formed', async () => {
    expect(await accepts({}, 'The weather is nice.')).toBe(true);
    expect(await accepts({}, `Checking.\n<tool_call>\n{"name": "get_time", "arguments": ${TIME}}\n</tool_call>`)).toBe(true);
    expect(await accepts({}, '<tool_call>\n{"name": "get_time", "arguments": {"tz": 5}}\n</tool_call>')).toBe(false);
  });

  it('whitespace between JSON elements of the arguments is bounded, as in response_format schemas', async () => {
    const call = (gap: string) => `<tool_call>\n{"name": "get_time", "arguments": {"tz":${gap}"CET"}}\n</tool_call>`;
    expect(await accepts({ choice: 'required' }, call('    '))).toBe(true);
    expect(await accepts({ choice: 'required' }, call('     '))).toBe(false);
  });

  it('a response_format after the reasoning: free thinking, then only the schema (json_object takes any properties)', async () => {
    const format = (spec: GrammarSpec): Promise<GrammarSpec> =>
      Promise.resolve(afterReasoning(structuralFormat(spec), { startTag: '<think>', endTag: '</think>' }));
    const takes = async (spec: GrammarSpec, text: string): Promise<boolean> => {
      const grammar = await engine.createSequenceGrammar(await format(spec));
      try {
        for (const id of t.tokenizer.encode(text, false)) if (!grammar.acceptToken(id)) return false;
        await grammar.fillNextTokenMask();
        return grammar.allowedStopTokens().includes(eos);
      } finally {
        grammar.dispose();
      }
    };
    expect(await takes({ type: 'json_object' }, '<think>\n{not json yet}\n</think>\n\n{"any": [1, 2], "b": null}')).toBe(true);
    expect(await takes({ type: 'json_object' }, '<think>\nhmm\n</think>\n\nplain text')).toBe(false);
    const schema: GrammarSpec = {
      type: 'json_schema',
      schema: { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] },
    };
    expect(await takes(schema, '<think>ok</think>{"a": 3}')).toBe(true);
    expect(await takes(schema, '<think>ok</think>{"a": 3, "b": 4}')).toBe(false);
    expect(await takes({ type: 'regex', pattern: '[0-9]+' }, '<think>ok</think>\n42')).toBe(true);
    expect(await takes({ type: 'choice', choices: ['yes', 'no'] }, '<think>ok</think>maybe')).toBe(false);
  });

  it('reasoning first: free thinking up to </think>, then the required call', async () => {
    const call = `<tool_call>\n{"name": "get_time", "arguments": ${TIME}}\n</tool_call>`;
    const reasoning = { startTag: '<think>', endTag: '</think>' };
    expect(await accepts({ choice: 'required', reasoning }, `<think>\nThe user wants the time.\n</think>\n\n${call}`)).toBe(true);
    expect(await accepts({ choice: 'required', reasoning }, '<think>\nhmm\n</think>\n\nNo call.')).toBe(false);
    expect(
      await accepts({ choice: 'required', reasoning: { startTag: null, endTag: '</think>' } }, `Thinking...\n</think>\n\n${call}`),
    ).toBe(true);
  });
});
