import { describe, expect, it } from 'vitest';
import { StopStringMatcher } from '../../server/engine/stop-strings.ts';

/** Feeds pieces one by one; returns what was emitted piece by piece and whether it stopped. */
function run(stops: string[], pieces: string[]): { emitted: string[]; stopped: boolean; rest: string } {
  const matcher = new StopStringMatcher(stops);
  const emitted: string[] = [];
  for (const piece of pieces) {
    const match = matcher.push(piece);
    emitted.push(match.text);
    if (match.stopped) return { emitted, stopped: true, rest: '' };
  }
  return { emitted, stopped: false, rest: matcher.flush() };
}

describe('StopStringMatcher', () => {
  it('passes text through unchanged without stop strings', () => {
    expect(run([], ['Hel', 'lo', ' world'])).toEqual({ emitted: ['Hel', 'lo', ' world'], stopped: false, rest: '' });
  });

  it('stops before a stop string inside one piece and drops everything after it', () => {
    expect(run(['STOP'], ['abc STOP def'])).toEqual({ emitted: ['abc '], stopped: true, rest: '' });
  });

  it('holds back a possible start of a stop string until the next piece decides', () => {
    const result = run(['</end>'], ['one </', 'en', 'd> two']);
    expect(result.emitted).toEqual(['one ', '', '']);
    expect(result.stopped).toBe(true);
  });

  it('releases held text when the stop string does not follow', () => {
    const result = run(['</end>'], ['one </', 'en', 'ough']);
    expect(result.emitted).toEqual(['one ', '', '</enough']);
    expect(result.stopped).toBe(false);
  });

  it('releases held text at the end when generation stops for another reason', () => {
    expect(run(['xyz'], ['abc x', 'y'])).toEqual({ emitted: ['abc ', ''], stopped: false, rest: 'xy' });
  });

  it('never emits any part of a stop string, whatever the piece boundaries', () => {
    const text = 'The quick brown fox jumps over the lazy dog';
    for (const stop of ['fox', 'o', 'lazy dog', 'dog', 'jumps over']) {
      for (let size = 1; size <= 5; size++) {
        const pieces = text.match(new RegExp(`[\\s\\S]{1,${size}}`, 'g')) ?? [];
        const result = run([stop], pieces);
        expect(result.stopped).toBe(true);
        expect(result.emitted.join('')).toBe(text.slice(0, text.indexOf(stop)));
      }
    }
  });

  it('stops at the earliest of several stop strings', () => {
    expect(run(['lazy', 'quick', 'over'], ['The quick brown fox jumps over the lazy dog']).emitted).toEqual(['The ']);
  });

  it('does not split a surrogate pair when holding text back', () => {
    // JSON allows a lone low surrogate in a stop string; it matches the second half of a pair.
    const matcher = new StopStringMatcher(['\uDE00!']);
    const first = matcher.push('a\u{1F600}');
    expect(first).toEqual({ text: 'a', stopped: false });
    expect(matcher.push('?')).toEqual({ text: '\u{1F600}?', stopped: false });
  });
});
