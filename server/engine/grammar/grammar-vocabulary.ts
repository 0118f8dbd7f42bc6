// A model's vocabulary in the form xgrammar's TokenizerInfo reads: every token string by id,
// in the tokenizer's own encoding, plus how to decode them.
//
// xgrammar decodes tokens itself, by one rule for the whole vocabulary:
// - byte_level (GPT-2 style BPE: Qwen, DeepSeek): each character stands for one byte
//   (bytes_to_unicode); a token with any character outside that alphabet is kept verbatim.
// - byte_fallback (SentencePiece: Llama, Mistral): "<0xAB>" is the byte 0xAB and "▁" a space.
// - raw: the string is the text.
// Added tokens (tokenizer.json's added_tokens) are stored as plain text, not in that encoding,
// so each is re-encoded here: "<think>" happens to survive byte-level decoding, but an added
// token with a space or a Latin-1 letter would not. Special added tokens (<|im_start|>, BOS)
// become "" so xgrammar treats them as special and never allows them inside a grammar; stop
// tokens are passed to xgrammar by id, and markup tokens that a tool-call grammar must emit
// ([TOOL_CALLS]) can be kept as text.

export type GrammarVocabType = 'byte_level' | 'byte_fallback' | 'raw';

export interface GrammarVocabulary {
  /** Token strings by id in the encoding of vocabType; "" marks ids a grammar never allows. */
  encodedTokens: string[];
  vocabType: GrammarVocabType;
  /** The tokenizer puts "▁" before the text (Llama's Prepend normalizer, Metaspace). */
  prependSpace: boolean;
}

export interface GrammarVocabularyOptions {
  /** Special added tokens a grammar may emit as text (a tool-call parser's markup). */
  textSpecialTokens?: readonly string[];
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function detectVocabType(tokenizerJson: Json): GrammarVocabType {
  const decoders = childrenAndSelf(tokenizerJson.decoder, 'decoders');
  if (decoders.some((d) => d.type === 'ByteLevel')) return 'byte_level';
  const spaceReplacer = (d: Json): boolean =>
    d.type === 'Replace' && isObject(d.pattern) && d.pattern.String === '\u2581' && d.content === ' ';
  if (decoders.some((d) => d.type === 'ByteFallback' || d.type === 'Metaspace' || spaceReplacer(d))) return 'byte_fallback';
  return 'raw';
}

export function detectPrependSpace(tokenizerJson: Json): boolean {
  const normalizers = childrenAndSelf(tokenizerJson.normalizer, 'normalizers');
  if (normalizers.some((n) => n.type === 'Prepend' && n.prepend === '\u2581')) return true;
  const pre = childrenAndSelf(tokenizerJson.pre_tokenizer, 'pretokenizers');
  return pre.some(
    (p) => p.type === 'Metaspace' && (p.prepend_scheme === 'always' || p.prepend_scheme === 'first' || p.add_prefix_space === true),
  );
}

/** A component and, for a Sequence, the components it lists under childKey. */
function childrenAndSelf(value: unknown, childKey: string): Json[] {
  if (!isObject(value)) return [];
  const children = Array.isArray(value[childKey]) ? (value[childKey] as unknown[]).filter(isObject) : [];
  return [value, ...children];
}

/** GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest from U+0100. */
function byteLevelAlphabet(): string[] {
  const alphabet: string[] = new Array<string>(256);
  let next = 256;
  for (let byte = 0; byte < 256; byte++) {
    const printable = (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
    alphabet[byte] = String.fromCodePoint(printable ? byte : next++);
  }
  return alphabet;
}

const BYTE_LEVEL = byteLevelAlphabet();

export function encodeByteLevel(text: string): string {
  let encoded = '';
  for (const byte of Buffer.from(text, 'utf8')) encoded += BYTE_LEVEL[byte];
  return encoded;
}

/**
 * Added-token text in the byte_fallback encoding, or "" where it has none: a literal "▁" or a
 * text shaped like "<0xAB>" would decode to something else, so such a token is never allowed.
 */
function encodeByteFallback(text: string): string {
  if (text.includes('\u2581') || /^<0x[0-9A-F]{2}>$/.test(text)) return '';
  return text.replaceAll(' ', '\u2581');
}

function encodeAdded(text: string, vocabType: GrammarVocabType): string {
  if (vocabType === 'byte_level') return encodeByteLevel(text);
  if (vocabType === 'byte_fallback') return encodeByteFallback(text);
  return text;
}

/** model.vocab: {token: id} for BPE and WordPiece, [[piece, score], ...] for Unigram. */
function modelTokens(model: unknown): Array<[string, number]> {
  if (!isObject(model)) throw new TypeError('tokenizer.json has no "model" object');
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    return vocab.map((entry, id): [string, number] => [Array.isArray(entry) && typeof entry[0] === 'string' ? entry[0] : '', id]);
  }
  if (!isObject(vocab)) throw new TypeError('tokenizer.json "model.vocab" is neither an object nor a list');
  return Object.entries(vocab).filter((e): e is [string, number] => Number.isInteger(e[1]) && (e[1] as number) >= 0);
}

export function grammarVocabularyFromTokenizerJson(tokenizerJson: Json, options: GrammarVocabularyOptions = {}): GrammarVocabulary {
  const vocabType = detectVocabType(tokenizerJson);
  const encodedTokens: string[] = [];
  for (const [token, id] of modelTokens(tokenizerJson.model)) encodedTokens[id] = token;
  const keepAsText = new Set(options.textSpecialTokens ?? []);
  const added = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens.filter(isObject) : [];
  for (const token of added) {
    if (!Number.isInteger(token.id) || typeof token.content !== 'string') continue;
    const special = token.special === true && !keepAsText.has(token.content);
    encodedTokens[token.id as number] = special ? '' : encodeAdded(token.content, vocabType);
  }
  // Ids the tokenizer never produces (holes) are special too.
  for (let id = 0; id < encodedTokens.length; id++) encodedTokens[id] ??= '';
  return { encodedTokens, vocabType, prependSpace: detectPrependSpace(tokenizerJson) };
}

let byteOfChar: Map<string, number> | null = null;

/** The bytes a token stands for, decoded by the vocabulary's rule (as xgrammar decodes it). */
export function decodeGrammarToken(token: string, vocabType: GrammarVocabType): Buffer {
  if (vocabType === 'byte_fallback') {
    const byte = /^<0x([0-9A-F]{2})>$/.exec(token);
    return byte !== null ? Buffer.from([parseInt(byte[1], 16)]) : Buffer.from(token.replaceAll('\u2581', ' '), 'utf8');
  }
  if (vocabType === 'byte_level') {
    byteOfChar ??= new Map(BYTE_LEVEL.map((char, byte) => [char, byte]));
    const bytes: number[] = [];
    for (const char of token) {
      const byte = byteOfChar.get(char);
      if (byte === undefined) return Buffer.from(token, 'utf8'); // outside the alphabet: verbatim
      bytes.push(byte);
    }
    return Buffer.from(bytes);
  }
  return Buffer.from(token, 'utf8');
}
