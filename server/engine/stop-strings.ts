// Stop strings, matched on the detokenised text of one sequence. A stop string must never
// reach the client, not even its first characters in a stream, so text that could still
// grow into a stop string is held back until the next token decides it.

export interface StopMatch {
  /** Text that is now safe to emit. */
  text: string;
  /** A stop string was found: generation ends and nothing after `text` is emitted. */
  stopped: boolean;
}

export class StopStringMatcher {
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Feeds newly decoded text; returns what may be emitted now. */
  push(piece: string): StopMatch {
    const buffer = this.held + piece;
    const at = this.firstStopIndex(buffer);
    if (at >= 0) {
      this.held = '';
      return { text: buffer.slice(0, at), stopped: true };
    }
    const keep = this.holdLength(buffer);
    this.held = buffer.slice(buffer.length - keep);
    return { text: buffer.slice(0, buffer.length - keep), stopped: false };
  }

  /** The held-back text, released when generation ends for another reason. */
  flush(): string {
    const text = this.held;
    this.held = '';
    return text;
  }

  private firstStopIndex(buffer: string): number {
    let first = -1;
    for (const stop of this.stops) {
      const at = buffer.indexOf(stop);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    return first;
  }

  /** Length of the longest end of `buffer` that begins some stop string. */
  private holdLength(buffer: string): number {
    let keep = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, buffer.length); k > keep; k--) {
        if (buffer.endsWith(stop.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    // Never split a surrogate pair: a lone high surrogate is not a character.
    const last = buffer.charCodeAt(buffer.length - keep - 1);
    if (keep < buffer.length && last >= 0xd800 && last <= 0xdbff) keep++;
    return keep;
  }
}
