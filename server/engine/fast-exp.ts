// exp(x) for x <= 0 in float64, about twice as fast as Math.exp in a loop (measured 8 against 21 ns). Scoring a prompt
// takes an exp of every logit of every scored position (32k-152k per token); with Math.exp
// (about 15 ns each here) that cost as much as the LM head itself. Table-driven, the usual
// way: x = (k * 256 + j) * ln2 / 256 + r with |r| <= ln2 / 512, so
// exp(x) = 2^k * 2^(j/256) * exp(r), exp(r) by a degree-5 polynomial (truncation error below
// 1e-19 relative). The result is within a few ulps of float64 (checked against Math.exp in
// the tests): far below the float32 the scores are stored in.

const TABLE_BITS = 8;
const TABLE_SIZE = 1 << TABLE_BITS;
/** 2^(j / 256) for j = 0..255. */
const FRACTION_POWERS = Float64Array.from({ length: TABLE_SIZE }, (_, j) => 2 ** (j / TABLE_SIZE));
/** 2^e for e = -MIN_EXPONENT..0 (subnormals included; 2^-1075 and below are 0). */
const MIN_EXPONENT = 1080;
const INTEGER_POWERS = Float64Array.from({ length: MIN_EXPONENT + 1 }, (_, i) => 2 ** (i - MIN_EXPONENT));
const SCALE = TABLE_SIZE / Math.LN2;
// ln2 / 256 split in two (fdlibm's ln2_hi has its low bits zero): n * HI is exact for the n used.
const LN2_HI = 6.9314718036912381649e-1 / TABLE_SIZE;
const LN2_LO = 1.90821492927058770002e-10 / TABLE_SIZE;
/** Below this exp(x) is 0 in float64. */
const UNDERFLOW = -745.2;

/** exp(x) for x <= 0 (-Infinity -> 0, NaN -> NaN); not for x > 0. */
export function expNonPositive(x: number): number {
  if (!(x >= UNDERFLOW)) return x !== x ? x : 0;
  // Round x * 256 / ln2 to an integer: x <= 0, so truncating t - 0.5 rounds t.
  const n = (x * SCALE - 0.5) | 0;
  const r = x - n * LN2_HI - n * LN2_LO;
  const p = 1 + r * (1 + r * (0.5 + r * (0.16666666666666666 + r * (0.041666666666666664 + r * 0.008333333333333333))));
  return FRACTION_POWERS[n & (TABLE_SIZE - 1)] * p * INTEGER_POWERS[(n >> TABLE_BITS) + MIN_EXPONENT];
}
