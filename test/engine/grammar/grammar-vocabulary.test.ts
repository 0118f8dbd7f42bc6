// The vocabulary handed to xgrammar: the right decoding rule per tokenizer, added tokens
// re-encoded so they decode to their text, special tokens kept out of grammars.
import { describe, expect, it } from 'vitest';
import {
  decodeGrammarToken,
  encodeByteLevel,
  grammarVocabularyFromTokenizerJson,
} from '../../../server/engine/grammar/grammar-vocabulary.ts';
import { applyTokenBitmask, isTokenAllowed } from '../../../server/engine/grammar/token-mask.ts';
import { packagedTokenizer } from '../../helpers/packaged-tokenizers.ts';

describe('grammar vocabulary', () => {
  it('reads Llama-2 as byte fallback with a prepended space, Qwen3 and DeepSeek-V3 as byte level', () => {
    const llama = grammarVocabularyFromTokenizerJson(packagedTokenizer('llama2').tokenizerJson);
    expect([llama.vocabType, llama.prependSpace, llama.encodedTokens.length]).toEqual(['byte_fallback', true, 32000]);
    const qwen = grammarVocabularyFromTokenizerJson(packagedTokenizer('qwen3').tokenizerJson);
    expect([qwen.vocabType, qwen.prependSpace, qwen.encodedTokens.length]).toEqual(['byte_level', false, 151669]);
    const deepseek = grammarVocabularyFromTokenizerJson(packagedTokenizer('deepseek_v3').tokenizerJson);
    expect([deepseek.vocabType, deepseek.encodedTokens.length]).toEqual(['byte_level', 128815]);
  });

  it('blanks special added tokens, keeps markup tokens as text that decodes to itself', () => {
    const qwen = grammarVocabularyFromTokenizerJson(packagedTokenizer('qwen3').tokenizerJson);
    expect(qwen.encodedTokens[151644]).toBe(''); // <|im_start|>, special
    expect(decodeGrammarToken(qwen.encodedTokens[151657], 'byte_level').toString()).toBe('<tool_call>'); // not special
    const deepseek = grammarVocabularyFromTokenizerJson(packagedTokenizer('deepseek_v3').tokenizerJson);
    expect(decodeGrammarToken(deepseek.encodedTokens[128806], 'byte_level').toString()).toBe('<｜tool▁calls▁begin｜>');
    expect(deepseek.encodedTokens[0]).toBe(''); // BOS
    const kept = grammarVocabularyFromTokenizerJson(packagedTokenizer('qwen3').tokenizerJson, { textSpecialTokens: ['<|im_start|>'] });
    expect(decodeGrammarToken(kept.encodedTokens[151644], 'byte_level').toString()).toBe('<|im_start|>');
  });

  it('byte-level encodes spaces and Latin-1 letters as GPT-2 does', () => {
    expect(encodeByteLevel(' é\n')).toBe('ĠÃ©Ċ');
    expect(decodeGrammarToken('ĠÃ©Ċ', 'byte_level').toString()).toBe(' é\n');
    expect([...decodeGrammarToken('<0x0A>', 'byte_fallback')]).toEqual([10]);
    expect(decodeGrammarToken('▁hello', 'byte_fallback').toString()).toBe(' hello');
  });

  it('holes in the id range and a raw vocabulary', () => {
    const json = { model: { type: 'BPE', vocab: { a: 0, b: 2 } }, added_tokens: [{ id: 3, content: '</s>', special: true }] };
    expect(grammarVocabularyFromTokenizerJson(json)).toEqual({ encodedTokens: ['a', '', 'b', ''], vocabType: 'raw', prependSpace: false });
  });
});

describe('token bitmask', () => {
  it('sets refused logits to -Infinity, and ids past the mask too', () => {
    const mask = new Int32Array([0b101, -1]);
    const logits = new Float32Array(70).fill(2);
    applyTokenBitmask(logits, mask);
    expect(Array.from(logits.slice(0, 4))).toEqual([2, -Infinity, 2, -Infinity]);
    expect(logits[40]).toBe(2);
    expect(logits[64]).toBe(-Infinity);
    expect([isTokenAllowed(mask, 2), isTokenAllowed(mask, 3), isTokenAllowed(mask, 63), isTokenAllowed(mask, 64)]).toEqual([
      true,
      false,
      true,
      false,
    ]);
  });
});
