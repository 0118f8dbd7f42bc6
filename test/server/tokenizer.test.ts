// The prompt tokenizer's speed-up for SentencePiece-style BPE (withMetaspaceSplit) must not
// change a single token: the split tokenizer against the library's own on texts built to
// stress the cut points (runs of spaces, words glued to punctuation, newlines, special
// tokens, characters the vocabulary lacks).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TextTokenizer, withMetaspaceSplit } from '../../server/tokenizer/tokenizer.ts';
import { type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const FRAGMENTS = [
  ' ',
  '  ',
  '   ',
  '\n',
  '\n\n',
  '\t',
  'the',
  'The',
  'quick',
  'brown',
  'fox',
  ',',
  '.',
  '!',
  '?',
  '"',
  "'s",
  '(',
  ')',
  '123',
  '4567',
  'über',
  'naïve',
  '日本語',
  '你好',
  '😀',
  '🏳️‍🌈',
  '<s>',
  '</s>',
  '▁',
  '▁▁',
  'a▁b',
  'def',
  'return',
  '{',
  '}',
  '==',
  '->',
  'ünïcödé',
  '\u0301',
  'x',
];

/** Deterministic texts: fragments joined in random order. */
function texts(count: number): string[] {
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  return Array.from({ length: count }, () =>
    Array.from({ length: 1 + (next() % 40) }, () => FRAGMENTS[next() % FRAGMENTS.length]).join(''),
  );
}

describe('prompt tokenizer', () => {
  let model: TinyModel;
  let split: TextTokenizer;
  let library: Tokenizer;

  beforeAll(() => {
    model = writeTinyModel({}, 3);
    split = TextTokenizer.load(model.dir);
    const json = JSON.parse(readFileSync(join(model.dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const config = JSON.parse(readFileSync(join(model.dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    expect(withMetaspaceSplit(json)).not.toBe(json); // the test tokenizer is one the split applies to
    library = new Tokenizer(json, config);
  });
  afterAll(() => model?.remove());

  it('cuts SentencePiece-style text before each run of "▁" and tokenises it exactly as the library does whole', () => {
    for (const text of [...texts(3000), '', ' ', '  leading', 'trailing  ', 'a  b   c    d', '▁▁▁x']) {
      for (const special of [true, false]) {
        expect(split.encode(text, special), JSON.stringify(text)).toEqual(library.encode(text, { add_special_tokens: special }).ids);
      }
    }
  });

  it('leaves a tokenizer alone when a merge could join across the cut, or when it has a pre-tokenizer', () => {
    const model = { type: 'BPE', vocab: {}, merges: ['a ▁b'] };
    const crossing = { pre_tokenizer: null, model };
    expect(withMetaspaceSplit(crossing)).toBe(crossing);
    const byteLevel = { pre_tokenizer: { type: 'ByteLevel' }, model: { ...model, merges: ['a b'] } };
    expect(withMetaspaceSplit(byteLevel)).toBe(byteLevel);
  });
});
