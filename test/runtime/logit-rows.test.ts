// The logits rows a step returns (StepSequence.logits), on both runners: the per-expert plan
// and the fused device plan (CPU provider). Scoring a prompt from a position on asks for the
// rows from that row to the chunk's end, which must be exactly those rows of 'all'.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepSequence } from '../../runtime/step-batch.ts';
import { openDeviceRunner, PRECISIONS } from '../helpers/device-model.ts';
import { openRunner, testTokens, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

interface Opened {
  runner: { step(batch: StepSequence[]): { logits: Float32Array } | Promise<{ logits: Float32Array }> };
  newCache(maxTokens?: number): StepSequence['cache'];
  release(): Promise<void>;
}

describe('logits rows of a step', () => {
  let model: TinyModel;
  const runners: Array<[string, Opened]> = [];

  beforeAll(async () => {
    model = writeTinyModel({}, 6);
    runners.push(['per-expert', await openRunner(model, 'fp32')]);
    runners.push(['fused device plan', await openDeviceRunner(model, PRECISIONS.fp32)]);
  });
  afterAll(async () => {
    for (const [, opened] of runners) await opened.release();
    model?.remove();
  });

  it('returns the rows from fromRow on, the last row, or none, for each sequence of a batch', async () => {
    const a = testTokens(20, 4);
    const b = testTokens(9, 5);
    for (const [name, opened] of runners) {
      const step = async (logits: StepSequence['logits'][]): Promise<Float32Array> =>
        (await opened.runner.step([a, b].map((tokens, i) => ({ tokens, cache: opened.newCache(32), logits: logits[i] })))).logits;
      const vocab = (await step(['last', 'none'])).length;
      const all = await step(['all', 'all']);
      const rowsOfA = all.subarray(0, 20 * vocab);
      const rowsOfB = all.subarray(20 * vocab);
      expect({ name, rows: (await step([{ fromRow: 12 }, 'last'])).length / vocab }).toEqual({ name, rows: 9 });
      const mixed = await step([{ fromRow: 12 }, 'last']);
      const close = (got: Float32Array, want: Float32Array) => got.every((v, i) => Math.abs(v - want[i]) < 1e-4);
      expect(close(mixed.subarray(0, 8 * vocab), rowsOfA.subarray(12 * vocab)), name).toBe(true);
      expect(close(mixed.subarray(8 * vocab), rowsOfB.subarray(8 * vocab)), name).toBe(true);
      expect((await step(['none', 'none'])).length).toBe(0);
    }
  });
});
