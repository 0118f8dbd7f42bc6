// Incremental detokenisation that never emits a broken character. Byte-fallback tokenizers
// spell one character over several tokens, and SentencePiece decoders drop the space of a
// window's first token, so each new piece is found by decoding a short window that starts a
// few tokens back and keeping what the new tokens added; a piece that ends in U+FFFD (an
// incomplete UTF-8 sequence) waits for the next token.
import type { TextTokenizer } from '../tokenizer/tokenizer.ts';

/** How many earlier tokens give the decoder context (space handling) for the new ones. */
const CONTEXT_TOKENS = 5;
const REPLACEMENT_CHAR = '\uFFFD';

export class IncrementalDetokenizer {
  private readonly ids: number[];
  private prefixOffset: number;
  private readOffset: number;

  /** @param contextIds tokens before the first one to detokenise (the prompt) */
  constructor(
    private readonly tokenizer: TextTokenizer,
    contextIds: readonly number[],
  ) {
    this.ids = contextIds.slice(-CONTEXT_TOKENS);
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
  }

  /** Adds one token and returns the text it completes ('' while a character is incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT_CHAR)) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    // Keep the window short: everything before prefixOffset is never decoded again.
    if (this.prefixOffset > CONTEXT_TOKENS * 4) {
      this.ids.splice(0, this.prefixOffset);
      this.readOffset -= this.prefixOffset;
      this.prefixOffset = 0;
    }
    return fullText.slice(prefixText.length);
  }

  /** Text held back at the end (an incomplete character), decoded as is. */
  flush(): string {
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    return fullText.length > prefixText.length ? fullText.slice(prefixText.length) : '';
  }
}
