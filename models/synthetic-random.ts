// A small seeded PRNG for synthetic weights. Each tensor gets its own stream derived from
// (seed, tensor name), so values do not depend on generation order and a checkpoint can be
// written in any order, sharded or not, and still come out byte-identical.
import { rotl, Xoshiro128StarStar } from './xoshiro128.ts';

/** 32-bit FNV-1a over the UTF-16 code units of `text`: cheap and well spread for names. */
function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** splitmix32 step: turns one 32-bit state into well-mixed seed words. */
function splitmix32(state: number): { next: number; value: number } {
  const next = (state + 0x9e3779b9) | 0;
  let t = next ^ (next >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  t ^= t >>> 15;
  return { next, value: t >>> 0 };
}

/** The synthetic-weights stream: xoshiro128** seeded from one 32-bit word through splitmix32. */
export class Xoshiro128 extends Xoshiro128StarStar {
  constructor(seed: number) {
    let state = seed | 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const step = splitmix32(state);
      state = step.next;
      words.push(step.value);
    }
    super([words[0], words[1], words[2], words[3]]);
  }

  /** Uniform in [0, 1), 32 bits. */
  nextFloat(): number {
    return this.nextUint32() / 0x100000000;
  }
}

/** The stream for one tensor of a checkpoint generated from `seed`. */
export function tensorStream(seed: number, tensorName: string): Xoshiro128 {
  return new Xoshiro128(fnv1a32(`${seed}\u0000${tensorName}`));
}

/** `count` values uniform in [center - halfWidth, center + halfWidth). */
export function uniformValues(rng: Xoshiro128, count: number, center: number, halfWidth: number): Float32Array {
  const out = new Float32Array(count);
  // Same stream as count calls of rng.nextFloat(), with the state in locals: several times
  // faster, which matters for the 0.6B-parameter bench checkpoint.
  let [s0, s1, s2, s3] = rng.state();
  const scale = (2 * halfWidth) / 0x100000000;
  const low = center - halfWidth;
  for (let i = 0; i < count; i++) {
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    out[i] = low + result * scale;
  }
  rng.setState([s0, s1, s2, s3]);
  return out;
}
