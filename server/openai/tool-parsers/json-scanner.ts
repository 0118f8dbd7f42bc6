// An incremental JSON syntax checker for one value arriving in pieces. It consumes characters
// up to the end of the value (not one past it), says when the value is complete or broken at
// the character that broke it, and records where each member of a top-level object starts
// and ends, so a tool-call parser can stream the raw text of "arguments" as it validates.
// Written here because JSON.parse needs the whole text and the streaming JSON parsers on npm
// report values, not the source spans a tool-call delta must forward verbatim.

export interface JsonMember {
  key: string;
  /** Offset in `text` of the value's first character. */
  valueStart: number;
  /** Offset just past the value's last character; null while the value is still open. */
  valueEnd: number | null;
}

export type JsonScanState = 'scanning' | 'done' | 'error';

type Mode =
  'value' | 'valueOrArrayEnd' | 'keyOrObjectEnd' | 'key' | 'colon' | 'afterValue' | 'string' | 'escape' | 'unicode' | 'number' | 'literal';

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);
const NUMBER_CHARS = /[-+.eE0-9]/;
const NUMBER_PREFIX = /^-?$|^-?(0|[1-9]\d*)(\.\d*)?([eE][+-]?\d*)?$/;
const NUMBER_COMPLETE = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
const LITERALS = ['true', 'false', 'null'];

export class JsonScanner {
  /** Every character consumed: the value's text (and nothing after it). */
  text = '';
  state: JsonScanState = 'scanning';
  error: string | null = null;
  /** Members of the top-level object, in order (empty when the value is not an object). */
  readonly members: JsonMember[] = [];

  private mode: Mode = 'value';
  private readonly stack: Array<'{' | '['> = [];
  private stringIsKey = false;
  private stringStart = 0;
  private unicodeLeft = 0;
  private token = '';
  private pendingKey: string | null = null;

  /** Consumes characters of chunk until the value ends or breaks; returns how many it took. */
  push(chunk: string): number {
    let used = 0;
    while (used < chunk.length && this.state === 'scanning') {
      if (!this.step(chunk[used])) break;
      used++;
    }
    return used;
  }

  /** The member with this key once its value has started, else undefined. */
  member(key: string): JsonMember | undefined {
    return this.members.find((m) => m.key === key);
  }

  /** Processes one character; false when it is not part of the value (value already done). */
  private step(ch: string): boolean {
    switch (this.mode) {
      case 'string':
        return this.stringChar(ch);
      case 'escape':
        if ('"\\/bfnrt'.includes(ch)) this.mode = 'string';
        else if (ch === 'u') [this.mode, this.unicodeLeft] = ['unicode', 4];
        else return this.fail(`bad escape \\${ch}`);
        return this.take(ch);
      case 'unicode':
        if (!/[0-9a-fA-F]/.test(ch)) return this.fail('bad \\u escape');
        if (--this.unicodeLeft === 0) this.mode = 'string';
        return this.take(ch);
      case 'number':
        return this.numberChar(ch);
      case 'literal':
        return this.literalChar(ch);
      default:
        return this.structuralChar(ch);
    }
  }

  private structuralChar(ch: string): boolean {
    if (WHITESPACE.has(ch)) return this.stack.length === 0 && this.mode === 'afterValue' ? false : this.take(ch);
    switch (this.mode) {
      case 'valueOrArrayEnd':
        if (ch === ']') return this.close(ch);
        return this.beginValue(ch);
      case 'value':
        return this.beginValue(ch);
      case 'keyOrObjectEnd':
        if (ch === '}') return this.close(ch);
        return this.beginKey(ch);
      case 'key':
        return this.beginKey(ch);
      case 'colon':
        if (ch !== ':') return this.fail(`expected ":" after a key, got ${JSON.stringify(ch)}`);
        this.mode = 'value';
        return this.take(ch);
      case 'afterValue':
        return this.afterValueChar(ch);
      default:
        return this.fail('internal scanner state');
    }
  }

  private afterValueChar(ch: string): boolean {
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) return false;
    if (ch === ',') {
      this.mode = top === '{' ? 'key' : 'value';
      return this.take(ch);
    }
    if ((ch === '}' && top === '{') || (ch === ']' && top === '[')) return this.close(ch);
    return this.fail(`expected "," or "${top === '{' ? '}' : ']'}", got ${JSON.stringify(ch)}`);
  }

  private beginKey(ch: string): boolean {
    if (ch !== '"') return this.fail(`expected a quoted key, got ${JSON.stringify(ch)}`);
    [this.mode, this.stringIsKey, this.stringStart] = ['string', true, this.text.length];
    return this.take(ch);
  }

  private beginValue(ch: string): boolean {
    if (this.stack.length === 1 && this.stack[0] === '{' && this.pendingKey !== null) {
      this.members.push({ key: this.pendingKey, valueStart: this.text.length, valueEnd: null });
      this.pendingKey = null;
    }
    if (ch === '{' || ch === '[') {
      this.stack.push(ch);
      this.mode = ch === '{' ? 'keyOrObjectEnd' : 'valueOrArrayEnd';
    } else if (ch === '"') {
      [this.mode, this.stringIsKey, this.stringStart] = ['string', false, this.text.length];
    } else if (ch === '-' || (ch >= '0' && ch <= '9')) {
      [this.mode, this.token] = ['number', ch];
    } else if (LITERALS.some((word) => word.startsWith(ch))) {
      [this.mode, this.token] = ['literal', ch];
    } else {
      return this.fail(`expected a value, got ${JSON.stringify(ch)}`);
    }
    return this.take(ch);
  }

  private stringChar(ch: string): boolean {
    if (ch === '\\') this.mode = 'escape';
    else if (ch < ' ') return this.fail('a control character inside a string');
    else if (ch === '"') {
      this.take(ch);
      if (this.stringIsKey) {
        if (this.stack.length === 1) this.pendingKey = JSON.parse(this.text.slice(this.stringStart)) as string;
        this.mode = 'colon';
      } else {
        this.valueEnded();
      }
      return true;
    }
    return this.take(ch);
  }

  private numberChar(ch: string): boolean {
    if (NUMBER_CHARS.test(ch)) {
      if (!NUMBER_PREFIX.test(this.token + ch)) return this.fail(`bad number ${this.token + ch}`);
      this.token += ch;
      return this.take(ch);
    }
    if (!NUMBER_COMPLETE.test(this.token)) return this.fail(`bad number ${this.token}`);
    this.valueEnded();
    return this.state === 'scanning' ? this.step(ch) : false;
  }

  private literalChar(ch: string): boolean {
    const next = this.token + ch;
    if (!LITERALS.some((word) => word.startsWith(next))) return this.fail(`bad literal ${next}`);
    this.token = next;
    this.take(ch);
    if (LITERALS.includes(next)) this.valueEnded();
    return true;
  }

  private close(ch: string): boolean {
    this.stack.pop();
    this.take(ch);
    this.valueEnded();
    return true;
  }

  /** A value just ended at the current end of text. */
  private valueEnded(): void {
    if (this.stack.length === 0) {
      this.mode = 'afterValue';
      this.state = 'done';
      return;
    }
    if (this.stack.length === 1 && this.stack[0] === '{') {
      const last = this.members[this.members.length - 1];
      if (last !== undefined && last.valueEnd === null) last.valueEnd = this.text.length;
    }
    this.mode = 'afterValue';
  }

  private take(ch: string): true {
    this.text += ch;
    return true;
  }

  private fail(reason: string): false {
    this.state = 'error';
    this.error = reason;
    return false;
  }
}
