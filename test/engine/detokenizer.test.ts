// Incremental detokenisation with the real 32000-token Llama/Mistral tokenizer a synthetic
// checkpoint ships: streamed pieces must add up to what decoding the whole output gives, and
// a character spelled over several byte-fallback tokens appears only once it is complete.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../server/engine/rng.ts';
import { IncrementalDetokenizer } from '../../server/engine/detokenizer.ts';
import { TextTokenizer } from '../../server/tokenizer/tokenizer.ts';
import { type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const VOCAB = 32000;
/** <0x00> is id 3 in this tokenizer, so byte b is id b + 3. */
const BYTE_BASE = 3;
const byteToken = (byte: number): number => BYTE_BASE + byte;
const REPLACEMENT = '\uFFFD';

/** Feeds ids one by one; returns each push's piece and the final flush. */
function stream(detok: IncrementalDetokenizer, ids: readonly number[]): { pieces: string[]; flushed: string } {
  const pieces = ids.map((id) => detok.push(id));
  return { pieces, flushed: detok.flush() };
}

describe('IncrementalDetokenizer', () => {
  let model: TinyModel;
  let tokenizer: TextTokenizer;
  /** The single-token spelling of a word with its leading space, e.g. "▁world". */
  let spaced: (word: string) => number;

  beforeAll(() => {
    model = writeTinyModel({}, 2);
    tokenizer = TextTokenizer.load(model.dir);
    spaced = (word) => {
      const ids = tokenizer.encode(word, false);
      expect(ids).toHaveLength(1);
      expect(tokenizer.idToToken(ids[0])).toBe(`▁${word}`);
      return ids[0];
    };
  });
  afterAll(() => model?.remove());

  it('has the byte-fallback tokens <0x00>..<0xFF> at ids 3..258', () => {
    for (let byte = 0; byte < 256; byte++) {
      expect(tokenizer.idToToken(byteToken(byte))).toBe(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
    }
    expect(tokenizer.idToToken(2)).toBe('</s>');
    expect(tokenizer.idToToken(259)).not.toMatch(/^<0x/);
  });

  it('emits nothing for the first three bytes of an emoji and the whole emoji with the fourth', () => {
    const prompt = tokenizer.encode('Look:');
    const emoji = [...new TextEncoder().encode('😀')].map(byteToken);
    expect(emoji).toHaveLength(4);
    const { pieces, flushed } = stream(new IncrementalDetokenizer(tokenizer, prompt), [...emoji, spaced('smile')]);
    expect(pieces).toEqual(['', '', '', '😀', ' smile']);
    expect(flushed).toBe('');
  });

  it('keeps the space of the first token after a prompt, and drops it after BOS alone, as decode does', () => {
    const world = spaced('world');
    expect(new IncrementalDetokenizer(tokenizer, tokenizer.encode('Hello')).push(world)).toBe(' world');
    expect(tokenizer.decode([...tokenizer.encode('Hello'), world])).toBe('Hello world');
    const bos = tokenizer.bosTokenId!;
    expect(new IncrementalDetokenizer(tokenizer, [bos]).push(world)).toBe('world');
    expect(tokenizer.decode([bos, world])).toBe('world');
  });

  it('decodes the first token on its own when there is no context', () => {
    const detok = new IncrementalDetokenizer(tokenizer, []);
    expect(detok.push(spaced('Hello'))).toBe('Hello');
    expect(detok.push(spaced('there'))).toBe(' there');
    expect(detok.flush()).toBe('');
  });

  it('holds an incomplete character back until flush, which returns it as decode would', () => {
    const prompt = tokenizer.encode('Cut');
    const cut = [spaced('off'), byteToken(0xf0), byteToken(0x9f)];
    const { pieces, flushed } = stream(new IncrementalDetokenizer(tokenizer, prompt), cut);
    expect(pieces).toEqual([' off', '', '']);
    expect(flushed).toBe(REPLACEMENT);
    expect(pieces.join('') + flushed).toBe(tokenizer.decode([...prompt, ...cut]).slice(tokenizer.decode(prompt).length));
  });

  it('reproduces decode of the whole output for random ids, including bytes and special tokens', () => {
    const rng = new Rng(1234);
    const prompt = tokenizer.encode('Once upon a time');
    const promptText = tokenizer.decode(prompt);
    for (let trial = 0; trial < 150; trial++) {
      const ids = randomIds(rng, 1 + Math.floor(rng.nextFloat() * 80));
      const withPrompt = stream(new IncrementalDetokenizer(tokenizer, prompt), ids);
      const whole = tokenizer.decode([...prompt, ...ids]);
      expect(whole.startsWith(promptText)).toBe(true);
      expect(withPrompt.pieces.join('') + withPrompt.flushed).toBe(whole.slice(promptText.length));
      const alone = stream(new IncrementalDetokenizer(tokenizer, []), ids);
      expect(alone.pieces.join('') + alone.flushed).toBe(tokenizer.decode(ids));
    }
  });

  it('never emits U+FFFD for valid text spelled partly in byte tokens', () => {
    const rng = new Rng(99);
    const prompt = tokenizer.encode('Text:');
    const promptText = tokenizer.decode(prompt);
    for (let trial = 0; trial < 100; trial++) {
      const ids: number[] = [];
      for (let n = 0; n < 40; n++) {
        if (rng.nextFloat() < 0.5) ids.push(259 + Math.floor(rng.nextFloat() * (VOCAB - 259)));
        else ids.push(...[...new TextEncoder().encode(randomCharacter(rng))].map(byteToken));
      }
      const whole = tokenizer.decode([...prompt, ...ids]).slice(promptText.length);
      expect(whole).not.toContain(REPLACEMENT); // the input really is valid UTF-8
      const { pieces, flushed } = stream(new IncrementalDetokenizer(tokenizer, prompt), ids);
      expect(pieces.filter((piece) => piece.includes(REPLACEMENT))).toEqual([]);
      expect(flushed).toBe('');
      expect(pieces.join('')).toBe(whole);
    }
  });
});

/** Mostly ordinary pieces, a third raw bytes (often invalid UTF-8 on purpose), a few specials. */
function randomIds(rng: Rng, count: number): number[] {
  return Array.from({ length: count }, () => {
    const r = rng.nextFloat();
    if (r < 0.05) return Math.floor(rng.nextFloat() * 3); // <unk>, <s>, </s>
    if (r < 0.4) return byteToken(Math.floor(rng.nextFloat() * 256));
    return 259 + Math.floor(rng.nextFloat() * (VOCAB - 259));
  });
}

/** A random character of 1 to 4 UTF-8 bytes (never a surrogate). */
function randomCharacter(rng: Rng): string {
  const ranges: Array<[number, number]> = [
    [0x21, 0x7e],
    [0xa1, 0x7ff],
    [0x800, 0xd7ff],
    [0x1f300, 0x1faff],
  ];
  const [lo, hi] = ranges[Math.floor(rng.nextFloat() * ranges.length)];
  return String.fromCodePoint(lo + Math.floor(rng.nextFloat() * (hi - lo + 1)));
}
