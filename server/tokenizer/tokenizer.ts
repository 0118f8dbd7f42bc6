// Loads a checkpoint's tokenizer.json and tokenizer_config.json through @huggingface/tokenizers.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError } from '../../models/errors.ts';

export type TokenizerConfig = Record<string, unknown>;

/**
 * tokenizer_config.json may give special tokens as strings or as AddedToken objects
 * ({content, lstrip, ...}); the tokenizer library and the chat template want the string.
 */
export function specialTokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'];

export class TextTokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** The longest vocabulary entry (added tokens included), in UTF-16 units: no token stands for more text. */
  readonly maxTokenChars: number;

  /**
   * Special tokens whose ids decoding drops even though they are kept as text: every other
   * special token, when some are kept (null: none kept, the library's own skipping applies).
   */
  private readonly droppedSpecialIds: ReadonlySet<number> | null;

  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly config: TokenizerConfig,
    specialTokens: ReadonlyArray<{ id: number; content: string }> = [],
    textSpecialTokens: readonly string[] = [],
  ) {
    const kept = new Set(textSpecialTokens);
    this.droppedSpecialIds = specialTokens.some((t) => kept.has(t.content))
      ? new Set(specialTokens.filter((t) => !kept.has(t.content)).map((t) => t.id))
      : null;
    let longest = 1;
    for (const token of tokenizer.get_vocab(true).keys()) longest = Math.max(longest, token.length);
    this.maxTokenChars = longest;
    this.bosToken = specialTokenText(config.bos_token);
    this.eosToken = specialTokenText(config.eos_token);
    this.bosTokenId = this.bosToken === null ? null : (tokenizer.token_to_id(this.bosToken) ?? null);
    this.eosTokenId = this.eosToken === null ? null : (tokenizer.token_to_id(this.eosToken) ?? null);
  }

  /**
   * `textSpecialTokens`: special tokens that decoding keeps in the text (a tool-call parser's
   * markup, such as Mistral's [TOOL_CALLS]); other special tokens are still left out.
   */
  static load(dir: string, textSpecialTokens: readonly string[] = []): TextTokenizer {
    const tokenizerPath = join(dir, 'tokenizer.json');
    const configPath = join(dir, 'tokenizer_config.json');
    const tokenizerJson = readJson(tokenizerPath);
    const config = existsSync(configPath) ? readJson(configPath) : {};
    const normalised: TokenizerConfig = { ...config };
    for (const key of SPECIAL_TOKEN_KEYS) {
      if (key in config) normalised[key] = specialTokenText(config[key]);
    }
    const tokenizer = new Tokenizer(withMetaspaceSplit(tokenizerJson), normalised);
    return new TextTokenizer(tokenizer, normalised, specialAddedTokens(tokenizerJson), textSpecialTokens);
  }

  /** Token ids of text; `addSpecialTokens` adds what the tokenizer's post-processor adds (BOS). */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    // The library throws on an empty list; no tokens are simply no text.
    if (ids.length === 0) return '';
    const dropped = this.droppedSpecialIds;
    if (!skipSpecialTokens || dropped === null) return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecialTokens });
    const kept = ids.filter((id) => !dropped.has(id));
    return kept.length === 0 ? '' : this.tokenizer.decode(kept, { skip_special_tokens: false });
  }

  /** The vocabulary entry of one id (e.g. "▁Hello", "<0xF0>"), for logprob listings. */
  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  get vocabularySize(): number {
    return this.tokenizer.get_vocab(true).size;
  }
}

const METASPACE = '\u2581';

/**
 * SentencePiece-style BPE tokenizers (Llama, Mistral) have no pre-tokenizer: the tokenizer
 * library then runs BPE over the whole prompt as one word, which is slow on long text. If no
 * merge joins a piece ending in some other character to a piece starting with "▁", no token
 * can span a place where "▁" follows another character, so cutting the normalised text
 * there first (each piece = a run of "▁" and the word after it) gives exactly the same
 * tokens, and the library's cache of pieces makes repeated words cheap. Any other tokenizer
 * is returned as it is.
 */
export function withMetaspaceSplit(json: Record<string, unknown>): Record<string, unknown> {
  const model = json.model as { type?: unknown; merges?: unknown } | undefined;
  if (json.pre_tokenizer != null || model?.type !== 'BPE' || !Array.isArray(model.merges)) return json;
  for (const merge of model.merges as Array<string | [string, string]>) {
    const [left, right] = typeof merge === 'string' ? merge.split(' ', 2) : merge;
    if (left === undefined || right === undefined) return json;
    if (right.startsWith(METASPACE) && !left.endsWith(METASPACE)) return json;
  }
  const pieces = `${METASPACE}*[^${METASPACE}]+|${METASPACE}+`;
  return { ...json, pre_tokenizer: { type: 'Split', pattern: { Regex: pieces }, behavior: 'Isolated', invert: true } };
}

/** tokenizer.json's added tokens marked special. */
function specialAddedTokens(json: Record<string, unknown>): Array<{ id: number; content: string }> {
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as unknown[]) : [];
  return added.flatMap((entry) => {
    const t = entry as { id?: unknown; content?: unknown; special?: unknown } | null;
    return t !== null && t.special === true && Number.isInteger(t.id) && typeof t.content === 'string'
      ? [{ id: t.id as number, content: t.content }]
      : [];
  });
}

function readJson(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError(path, '(file)', 'is missing');
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through to the error below
  }
  throw new ConfigError(path, '(file)', 'is not a JSON object');
}
