// Progress lines of long work say the rate so far and the time left at that rate.
import { describe, expect, it } from 'vitest';
import { formatDuration, rateAndEta } from '../../server/progress.ts';

describe('progress lines', () => {
  it('give the rate and the ETA once something is done, nothing at the start or the end', () => {
    expect(rateAndEta(0, 100, 3)).toBe('');
    expect(rateAndEta(25, 100, 10)).toBe(', 2.5/s, ETA 30s');
    expect(rateAndEta(300, 4000, 20)).toBe(', 15/s, ETA 4m07s');
    expect(rateAndEta(100, 100, 10)).toBe('');
  });

  it('formats durations in s, m and h', () => {
    expect(formatDuration(59.4)).toBe('59s');
    expect(formatDuration(245)).toBe('4m05s');
    expect(formatDuration(7322)).toBe('2h02m');
  });
});
