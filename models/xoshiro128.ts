// xoshiro128** (Blackman and Vigna): the one PRNG core of the project, in 32-bit integer
// arithmetic (Math.imul, >>> 0) so a state gives the same stream on every machine. Users
// seed it their own way: the sampler through splitmix64 (server/engine/rng.ts), synthetic
// checkpoints through splitmix32 per tensor name (models/synthetic-random.ts).

export type Xoshiro128State = [number, number, number, number];

export function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Xoshiro128StarStar {
  private s0 = 1;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  constructor(state?: Readonly<Xoshiro128State>) {
    if (state) this.setState(state);
  }

  state(): Xoshiro128State {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  setState([s0, s1, s2, s3]: Readonly<Xoshiro128State>): void {
    [this.s0, this.s1, this.s2, this.s3] = [s0 >>> 0, s1 >>> 0, s2 >>> 0, s3 >>> 0];
    // The all-zero state is the generator's one fixed point.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform unsigned 32-bit integer. */
  nextUint32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }
}
