// Rotary-embedding scaling math that a model's spec itself depends on (MLA's softmax scale),
// apart from the per-position tables the runtime computes (runtime/attention/rope-tables.ts).

/** yarn_get_mscale of the DeepSeek-V2/V3 reference code: 0.1 * m * ln(scale) + 1 above scale 1. */
export function yarnMscale(scale: number, mscale: number): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}
