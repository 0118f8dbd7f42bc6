// Structured output through xgrammar (WebAssembly) on the real vocabularies of Llama-2 (32k,
// SentencePiece byte fallback), DeepSeek-V3 (129k, byte-level) and Qwen3 (152k, byte-level):
// matchers driven token by token along valid documents, the mask agreeing with acceptToken,
// stop tokens allowed exactly where the grammar can end, and bad grammars refused by name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrammarEngine } from '../../../server/engine/grammar/grammar-engine.ts';
import { GrammarCompileError, type GrammarSpec } from '../../../server/engine/grammar/grammar-spec.ts';
import { grammarVocabularyFromTokenizerJson, type GrammarVocabulary } from '../../../server/engine/grammar/grammar-vocabulary.ts';
import type { SequenceGrammar } from '../../../server/engine/grammar/sequence-grammar.ts';
import { packagedTokenizer, type PackagedTokenizer, type PackagedTokenizerName } from '../../helpers/packaged-tokenizers.ts';
import { documentTokens } from '../../helpers/token-path.ts';

const PERSON: GrammarSpec = {
  type: 'json_schema',
  schema: {
    type: 'object',
    properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 }, tags: { type: 'array', items: { type: 'string' } } },
    required: ['name', 'age'],
  },
};
const PERSON_DOC = '{"name": "Ada Zürich 😀", "age": 36, "tags": ["a", "b"]}';

/** Drives a fresh matcher along tokens; returns it positioned after them. */
async function drive(engine: GrammarEngine, spec: GrammarSpec, tokens: readonly number[]): Promise<SequenceGrammar> {
  const grammar = await engine.createSequenceGrammar(spec);
  for (const token of tokens) {
    await grammar.fillNextTokenMask();
    expect(grammar.isTokenAllowed(token)).toBe(true);
    expect(grammar.allowedStopTokens()).toEqual([]);
    expect(grammar.acceptToken(token)).toBe(true);
  }
  await grammar.fillNextTokenMask();
  return grammar;
}

describe.each<PackagedTokenizerName>(['llama2', 'deepseek_v3', 'qwen3'])('grammar engine on the %s vocabulary', (name) => {
  let t: PackagedTokenizer;
  let vocabulary: GrammarVocabulary;
  let engine: GrammarEngine;
  let eos: number;

  beforeAll(async () => {
    t = packagedTokenizer(name);
    vocabulary = grammarVocabularyFromTokenizerJson(t.tokenizerJson);
    eos = t.tokenizer.eosTokenId ?? -1;
    engine = await GrammarEngine.create({ vocabulary, logitsSize: t.logitsSize, stopTokenIds: [eos] });
  });
  afterAll(() => engine.dispose());

  it('walks a schema-valid document token by token, then allows only the stop token', async () => {
    const grammar = await drive(engine, PERSON, documentTokens(t, vocabulary, PERSON_DOC));
    expect(grammar.allowedStopTokens()).toEqual([eos]);
    const logits = new Float32Array(t.logitsSize).fill(1);
    grammar.applyMask(logits);
    expect(logits.filter((x) => x !== -Infinity).length).toBe(1);
    expect(logits[eos]).toBe(1);
    expect(grammar.acceptToken(eos)).toBe(true);
    expect(grammar.isTerminated()).toBe(true);
    grammar.dispose();
  });

  it('refuses a token that breaks the schema, in the mask and in acceptToken', async () => {
    const prefix = documentTokens(t, vocabulary, '{"name": "Ada", "age": ');
    const grammar = await drive(engine, PERSON, prefix);
    const quote = documentTokens(t, vocabulary, '"')[0]; // age must be an integer, not a string
    expect(grammar.isTokenAllowed(quote)).toBe(false);
    expect(grammar.acceptToken(quote)).toBe(false);
    const digit = documentTokens(t, vocabulary, '7')[0];
    expect(grammar.isTokenAllowed(digit)).toBe(true);
    expect(grammar.acceptToken(digit)).toBe(true);
    grammar.dispose();
  });

  it('never allows special tokens or padding ids inside a grammar', async () => {
    const grammar = await engine.createSequenceGrammar({ type: 'json_object' });
    const mask = await grammar.fillNextTokenMask();
    expect(mask.length).toBe(Math.ceil(t.logitsSize / 32));
    const bos = t.tokenizer.bosTokenId;
    if (bos !== null) expect(grammar.isTokenAllowed(bos)).toBe(false);
    expect(grammar.isTokenAllowed(t.logitsSize - 1)).toBe(false);
    expect(grammar.isTokenAllowed(eos)).toBe(false); // "" is not a JSON object
    grammar.dispose();
  });
});

describe('grammar engine specs, errors, cache and rollback (Qwen3)', () => {
  let t: PackagedTokenizer;
  let vocabulary: GrammarVocabulary;
  let engine: GrammarEngine;
  const eos = 151645;

  beforeAll(async () => {
    t = packagedTokenizer('qwen3');
    vocabulary = grammarVocabularyFromTokenizerJson(t.tokenizerJson);
    engine = await GrammarEngine.create({ vocabulary, logitsSize: t.logitsSize, stopTokenIds: [eos, 151643], maxCachedGrammars: 3 });
  });
  afterAll(() => engine.dispose());

  const accepts = async (spec: GrammarSpec, text: string): Promise<boolean> => {
    const grammar = await engine.createSequenceGrammar(spec);
    try {
      for (const token of t.tokenizer.encode(text, false)) if (!grammar.acceptToken(token)) return false;
      await grammar.fillNextTokenMask();
      return grammar.allowedStopTokens().length > 0;
    } finally {
      grammar.dispose();
    }
  };

  it('json_object takes any object and nothing else', async () => {
    expect(await accepts({ type: 'json_object' }, '{"any": [1, {"thing": null}]}')).toBe(true);
    expect(await accepts({ type: 'json_object' }, '[1, 2]')).toBe(false);
  });

  it('json_schema refuses properties the schema does not name', async () => {
    expect(await accepts(PERSON, '{"name": "A", "age": 1}')).toBe(true);
    expect(await accepts(PERSON, '{"name": "A", "age": 1, "extra": 2}')).toBe(false);
    expect(await accepts(PERSON, '{"name": "A"}')).toBe(false);
  });

  it('regex, EBNF grammar and choice', async () => {
    const regex: GrammarSpec = { type: 'regex', pattern: '[0-9]{3}-[a-z]+' };
    expect(await accepts(regex, '123-abc')).toBe(true);
    expect(await accepts(regex, '12-abc')).toBe(false);
    const grammar: GrammarSpec = { type: 'grammar', grammar: 'root ::= "yes" | "no" | "maybe " [0-9]' };
    expect(await accepts(grammar, 'maybe 7')).toBe(true);
    expect(await accepts(grammar, 'nope')).toBe(false);
    const choice: GrammarSpec = { type: 'choice', choices: ['red "wine"', 'white\\wine'] };
    expect(await accepts(choice, 'red "wine"')).toBe(true);
    expect(await accepts(choice, 'white\\wine')).toBe(true);
    expect(await accepts(choice, 'rosé')).toBe(false);
  });

  it('refuses what xgrammar cannot compile with its reason, and keeps working', async () => {
    const bad: Array<[GrammarSpec, RegExp]> = [
      [{ type: 'json_schema', schema: { type: 'objec' } }, /json schema cannot be compiled: .*Unsupported type "objec"/],
      [{ type: 'json_schema', schema: [1] }, /must be a JSON object/],
      [{ type: 'grammar', grammar: 'root ::= "a" | ' }, /grammar cannot be compiled: .*EBNF parser error/],
      [{ type: 'regex', pattern: '[a-' }, /regex cannot be compiled: .*Unclosed/],
      [{ type: 'choice', choices: [] }, /choices is empty/],
    ];
    for (const [spec, message] of bad) {
      const error = await engine.compile(spec).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(GrammarCompileError);
      expect((error as GrammarCompileError).specType).toBe(spec.type);
      expect(String((error as Error).message)).toMatch(message);
    }
    expect(await accepts({ type: 'json_object' }, '{}')).toBe(true);
  });

  it('caches compiled grammars by their text, least recently used out first', async () => {
    const a: GrammarSpec = { type: 'regex', pattern: 'a+' };
    const first = await engine.compile(a);
    expect(await engine.compile({ type: 'regex', pattern: 'a+' })).toBe(first);
    await engine.compile({ type: 'regex', pattern: 'b+' });
    await engine.compile({ type: 'regex', pattern: 'c+' });
    await engine.compile(a); // a is now the most recent
    await engine.compile({ type: 'regex', pattern: 'd+' });
    expect(engine.numCachedGrammars).toBe(3);
    expect(await engine.compile(a)).toBe(first);
  });

  it('a matcher outlives its compiled grammar leaving the cache', async () => {
    const spec: GrammarSpec = { type: 'regex', pattern: 'x[0-9]+' };
    const grammar = await engine.createSequenceGrammar(spec);
    for (let i = 0; i < 4; i++) await engine.compile({ type: 'regex', pattern: `evict${i}` });
    for (const token of t.tokenizer.encode('x42', false)) expect(grammar.acceptToken(token)).toBe(true);
    await grammar.fillNextTokenMask();
    expect(grammar.allowedStopTokens()).toEqual([eos, 151643]);
    grammar.dispose();
  });

  it('rolls back accepted tokens', async () => {
    const grammar = await engine.createSequenceGrammar({ type: 'json_object' });
    const tokens = t.tokenizer.encode('{"a": 1}', false);
    for (const token of tokens) expect(grammar.acceptToken(token)).toBe(true);
    await grammar.fillNextTokenMask();
    expect(grammar.allowedStopTokens().length).toBe(2);
    grammar.rollback(1);
    await grammar.fillNextTokenMask();
    expect(grammar.allowedStopTokens()).toEqual([]);
    expect(grammar.numAcceptedTokens).toBe(tokens.length - 1);
    expect(() => grammar.rollback(tokens.length)).toThrow(RangeError);
    grammar.dispose();
  });
});

describe('grammar engine under many rejected grammars', () => {
  it('keeps compiling and matching after more rejections than one xgrammar instance survives', async () => {
    // A rejection aborts inside xgrammar without unwinding its stack; about 35 used to leave
    // an instance hanging. Rejections happen in a throwaway probe instance instead.
    const vocabulary = grammarVocabularyFromTokenizerJson({
      model: { type: 'BPE', vocab: { '{': 0, '}': 1, '"': 2, a: 3, ':': 4, '</s>': 5 } },
    });
    const engine = await GrammarEngine.create({ vocabulary, logitsSize: 6, stopTokenIds: [5] });
    for (let i = 0; i < 45; i++) {
      const spec: GrammarSpec =
        i % 2 === 0
          ? { type: 'json_schema', schema: { type: 'objec', title: `t${i}` } }
          : { type: 'grammar', grammar: `root ::= "a" | (${i}` };
      await expect(engine.compile(spec)).rejects.toBeInstanceOf(GrammarCompileError);
    }
    const grammar = await engine.createSequenceGrammar({ type: 'json_object' });
    for (const token of [0, 1]) expect(grammar.acceptToken(token)).toBe(true);
    await grammar.fillNextTokenMask();
    expect(grammar.allowedStopTokens()).toEqual([5]);
    grammar.dispose();
    engine.dispose();
  });
});
