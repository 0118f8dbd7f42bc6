// cos/sin tables for rotary embeddings, per token position, in float64 then stored as f32.
import type { RopeSpec } from '../models/spec.ts';

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
  return inv;
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
  for (let t = 0; t < positions.length; t++) {
    const p = positions[t] / linearFactor;
    const row = (rowOffset + t) * half;
    for (let i = 0; i < half; i++) {
      const angle = p * inv[i];
      cos[row + i] = Math.cos(angle);
      sin[row + i] = Math.sin(angle);
    }
  }
}
