// Seeded pseudo-random numbers for sampling: xoshiro128** (kernels/xoshiro128.ts), seeded
// through splitmix64 as its authors recommend. 32-bit integer arithmetic only (Math.imul, >>> 0), so
// a seed gives the same sequence on every machine and Node version.
import { getRandomValues } from 'node:crypto';
import { Xoshiro128StarStar } from '../../models/xoshiro128.ts';

/** What the sampler needs from a random source. */
export interface RandomSource {
  /** Uniform in [0, 1). */
  nextFloat(): number;
}

const MASK_64 = (1n << 64n) - 1n;

/** One splitmix64 step: returns [next state, output], both unsigned 64-bit. */
export function splitmix64(state: bigint): [bigint, bigint] {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK_64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK_64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK_64;
  return [next, z ^ (z >> 31n)];
}

/** Seeds are integers: a safe-integer number (negative allowed, taken mod 2^64) or a bigint. */
function seedToUint64(seed: number | bigint): bigint {
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
    throw new RangeError(`seed must be a safe integer, got ${seed}`);
  }
  return BigInt.asUintN(64, BigInt(seed));
}

export class Rng extends Xoshiro128StarStar implements RandomSource {
  /** A seeded generator; with no seed, one seeded from the OS entropy source. */
  constructor(seed?: number | bigint) {
    if (seed === undefined) {
      const words = getRandomValues(new Uint32Array(4));
      super([words[0], words[1], words[2], words[3]]);
      return;
    }
    let state = seedToUint64(seed);
    let a: bigint;
    let b: bigint;
    [state, a] = splitmix64(state);
    [state, b] = splitmix64(state);
    super([Number(a >> 32n), Number(a & 0xffffffffn), Number(b >> 32n), Number(b & 0xffffffffn)]);
  }

  /** A generator with this exact xoshiro128** state (tests, reference vectors). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Rng {
    const rng = new Rng(0);
    rng.setState([s0, s1, s2, s3]);
    return rng;
  }

  /** Uniform in [0, 1) with 53 random bits (two draws), like Math.random's resolution. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }
}
