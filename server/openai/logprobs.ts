// Logprobs in OpenAI's shapes. The values are the engine's exact log-softmax of the raw
// logits; this file only names tokens: each id's text and UTF-8 bytes, so a client can
// rebuild characters that span tokens (byte-fallback pieces such as "<0xF0>").
import type { TokenLogprob } from '../engine/api.ts';
import type { TextTokenizer } from '../tokenizer/tokenizer.ts';

export interface TokenText {
  token: string;
  bytes: number[];
}

export interface ChatLogprob extends TokenText {
  logprob: number;
  top_logprobs: Array<TokenText & { logprob: number }>;
}

export interface CompletionLogprobs {
  tokens: string[];
  /** null for an echoed prompt's first token, which has no context to be predicted from. */
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null>;
  text_offset: number[];
}

/** A token of completions' column form: generated, echoed prompt (logprob null for the first). */
export type CompletionEntry = TokenLogprob | { token: number; logprob: null; top: [] };

/** JSON has no -Infinity; vLLM reports impossible tokens as -9999 too. */
const IMPOSSIBLE_LOGPROB = -9999;
export const safeLogprob = (value: number): number => (Number.isFinite(value) ? value : IMPOSSIBLE_LOGPROB);

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const METASPACE = '\u2581';
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** GPT-2's byte-level alphabet, reversed: the character a byte-level vocabulary uses -> the byte. */
function byteLevelDecoder(): Map<number, number> {
  const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const decoder = new Map<number, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) decoder.set(printable(b) ? b : 256 + shifted++, b);
  return decoder;
}

/** Each token id's text and bytes, computed once per id. */
export class TokenTexts {
  private readonly cache = new Map<number, TokenText>();
  private readonly byteLevel: Map<number, number> | null;

  constructor(private readonly tokenizer: TextTokenizer) {
    // Byte-level BPE vocabularies spell a space as "Ġ"; SentencePiece ones as "▁".
    const pieces = tokenizer.encode(' a b', false).map((id) => tokenizer.idToToken(id) ?? '');
    this.byteLevel = pieces.some((piece) => piece.includes('\u0120')) ? byteLevelDecoder() : null;
  }

  get(id: number): TokenText {
    let text = this.cache.get(id);
    if (text === undefined) {
      const bytes = this.bytesOf(this.tokenizer.idToToken(id) ?? '');
      text = { token: bytesToText(bytes), bytes };
      this.cache.set(id, text);
    }
    return text;
  }

  private bytesOf(piece: string): number[] {
    const byteToken = BYTE_TOKEN.exec(piece);
    if (byteToken) return [parseInt(byteToken[1], 16)];
    if (this.byteLevel !== null) {
      const decoded = Array.from(piece, (ch) => this.byteLevel?.get(ch.codePointAt(0) ?? -1));
      if (decoded.every((b) => b !== undefined)) return decoded as number[];
    }
    return Array.from(utf8.encode(piece.replaceAll(METASPACE, ' ')));
  }
}

/** The token's text; a piece of a character shows its bytes as \xHH, as OpenAI does. */
function bytesToText(bytes: number[]): string {
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch {
    return bytes.map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
  }
}

export function chatLogprob(entry: TokenLogprob, texts: TokenTexts): ChatLogprob {
  return {
    ...texts.get(entry.token),
    logprob: safeLogprob(entry.logprob),
    top_logprobs: entry.top.map((alt) => ({ ...texts.get(alt.token), logprob: safeLogprob(alt.logprob) })),
  };
}

/**
 * Completions' column form. text_offset counts characters of the completion text; as in
 * vLLM it advances by each token's text length. The sampled token is always listed in
 * top_logprobs, so an entry has up to logprobs + 1 items.
 */
export function completionLogprobs(entries: readonly CompletionEntry[], texts: TokenTexts, startOffset: number): CompletionLogprobs {
  const result: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let offset = startOffset;
  for (const entry of entries) {
    const token = texts.get(entry.token).token;
    result.tokens.push(token);
    if (entry.logprob === null) {
      result.token_logprobs.push(null);
      result.top_logprobs.push(null);
    } else {
      const top: Record<string, number> = {};
      for (const alt of entry.top) top[texts.get(alt.token).token] = safeLogprob(alt.logprob);
      top[token] = safeLogprob(entry.logprob);
      result.token_logprobs.push(safeLogprob(entry.logprob));
      result.top_logprobs.push(top);
    }
    result.text_offset.push(offset);
    offset += token.length;
  }
  return result;
}

/** Where the next completion token's text_offset starts after these entries. */
export function nextTextOffset(logprobs: CompletionLogprobs, startOffset: number): number {
  const last = logprobs.tokens.length - 1;
  return last < 0 ? startOffset : logprobs.text_offset[last] + logprobs.tokens[last].length;
}
