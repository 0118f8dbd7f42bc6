// cos/sin tables for rotary embeddings, per token position, in float64 then stored as f32.
import { yarnMscale } from '../../models/rope-scaling.ts';
import type { RopeSpec, YarnRopeScaling } from '../../models/spec.ts';

/** Inverse frequencies 1 / base^(2i/d), with dynamic NTK scaling folded into the base. */
export function inverseFrequencies(rope: RopeSpec, sequenceLength: number): Float64Array {
  const d = rope.rotaryDim;
  let base = rope.theta;
  const s = rope.scaling;
  if (s?.type === 'dynamic' && sequenceLength > s.originalMaxPositions) {
    // Hugging Face's dynamic NTK: grow the base once the sequence outruns the trained length.
    const ratio = (s.factor * sequenceLength) / s.originalMaxPositions - (s.factor - 1);
    base = base * Math.pow(ratio, d / (d - 2));
  }
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.pow(base, (2 * i) / d);
  if (s?.type === 'yarn') yarnBlend(inv, s, base, d);
  return inv;
}

/**
 * YaRN (DeepseekV2YarnRotaryEmbedding): frequencies that turn fewer than beta_slow times over
 * the original context are interpolated (divided by factor), those turning more than
 * beta_fast times are kept, with a linear ramp between the two correction dimensions.
 */
function yarnBlend(inv: Float64Array, s: YarnRopeScaling, base: number, d: number): void {
  const correctionDim = (rotations: number): number =>
    (d * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  const low = Math.max(Math.floor(correctionDim(s.betaFast)), 0);
  let high = Math.min(Math.ceil(correctionDim(s.betaSlow)), d - 1);
  if (low === high) high += 0.001; // the reference's guard against a zero-width ramp
  for (let i = 0; i < inv.length; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const keep = 1 - ramp;
    inv[i] = (inv[i] / s.factor) * (1 - keep) + inv[i] * keep;
  }
}

/** YaRN multiplies cos and sin (so the rotated q and k) by this; 1 for other schemes. */
function ropeAmplitude(rope: RopeSpec): number {
  const s = rope.scaling;
  return s?.type === 'yarn' ? yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim) : 1;
}

/**
 * Writes cos and sin [positions.length, rotaryDim / 2] for the given absolute positions.
 * @param sequenceLength total length the sequence reaches in this step (dynamic scaling)
 */
export function fillRopeTables(
  rope: RopeSpec,
  positions: ArrayLike<number>,
  sequenceLength: number,
  cos: Float32Array,
  sin: Float32Array,
  rowOffset = 0,
): void {
  const inv = inverseFrequencies(rope, sequenceLength);
  const half = inv.length;
  const linearFactor = rope.scaling?.type === 'linear' ? rope.scaling.factor : 1;
  const amplitude = ropeAmplitude(rope);
  for (let t = 0; t < positions.length; t++) {
    const p = positions[t] / linearFactor;
    const row = (rowOffset + t) * half;
    for (let i = 0; i < half; i++) {
      const angle = p * inv[i];
      cos[row + i] = Math.cos(angle) * amplitude;
      sin[row + i] = Math.sin(angle) * amplitude;
    }
  }
}
