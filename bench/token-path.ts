// Token sequences that spell a document, for driving grammar matchers the way decoding does.
import { decodeGrammarToken, type GrammarVocabulary } from '../server/engine/grammar/grammar-vocabulary.ts';
import type { PackagedTokenizer } from './packaged-tokenizers.ts';

/**
 * Greedy longest match over the vocabulary's decoded bytes. Used for SentencePiece
 * vocabularies, whose own encoding starts the text with "▁" (a space a JSON grammar refuses
 * at the start, where a model writes "{" instead).
 */
export function greedyTokenPath(vocabulary: GrammarVocabulary, text: string): number[] {
  const byBytes = new Map<string, number>();
  let longest = 1;
  vocabulary.encodedTokens.forEach((token, id) => {
    if (token === '') return;
    const key = decodeGrammarToken(token, vocabulary.vocabType).toString('latin1');
    if (key === '' || byBytes.has(key)) return;
    byBytes.set(key, id);
    longest = Math.max(longest, key.length);
  });
  const bytes = Buffer.from(text, 'utf8').toString('latin1');
  const ids: number[] = [];
  for (let at = 0; at < bytes.length;) {
    let n = Math.min(longest, bytes.length - at);
    while (n > 0 && !byBytes.has(bytes.slice(at, at + n))) n--;
    if (n === 0) throw new Error(`no token spells byte ${bytes.charCodeAt(at)} at ${at}`);
    ids.push(byBytes.get(bytes.slice(at, at + n)) ?? -1);
    at += n;
  }
  return ids;
}

/** The tokens a model of this tokenizer would write for the text. */
export function documentTokens(t: PackagedTokenizer, vocabulary: GrammarVocabulary, text: string): number[] {
  return vocabulary.prependSpace ? greedyTokenPath(vocabulary, text) : t.tokenizer.encode(text, false);
}
