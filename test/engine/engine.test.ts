// The engine step's failure paths, with a stand-in for the model: one request that cannot be
// sampled ends alone, and a step that fails still delivers the ends it had already decided.
import { describe, expect, it } from 'vitest';
import { BlockManager } from '../../server/engine/block-manager.ts';
import type { IncrementalDetokenizer } from '../../server/engine/detokenizer.ts';
import { defaultSamplingParams } from '../../server/engine/api.ts';
import { Engine } from '../../server/engine/engine.ts';
import type { SequenceEvent } from '../../server/engine/protocol.ts';
import type { ModelRunner } from '../../runtime/model-runner.ts';
import type { StepResult, StepSequence } from '../../runtime/step-batch.ts';
import { Scheduler } from '../../server/engine/scheduler.ts';
import { Sequence } from '../../server/engine/sequence.ts';

const VOCAB = 8;
/** A prompt holding this token gets NaN logits from the stand-in model: nothing to sample. */
const POISON = 7;

/** Logits that all but certainly sample token 3 for every healthy sequence; `broken` makes the whole step throw. */
class StandInModel {
  readonly spec = { vocabSize: VOCAB };
  broken = false;

  step(inputs: StepSequence[]): StepResult {
    if (this.broken) throw new Error('the model broke');
    const rows = inputs.filter((input) => input.logits === 'last');
    const logits = new Float32Array(rows.length * VOCAB);
    rows.forEach((input, row) => {
      const poisoned = Array.from(input.tokens).includes(POISON);
      for (let t = 0; t < VOCAB; t++) logits[row * VOCAB + t] = poisoned ? NaN : t === 3 ? 50 : 0;
    });
    let numTokens = 0;
    for (const input of inputs) {
      input.cache.numCachedTokens += input.tokens.length;
      numTokens += input.tokens.length;
    }
    return { logits, routing: [], moeLayers: [], numTokens };
  }
}

const detokenizer = { push: () => '', flush: () => '' } as unknown as IncrementalDetokenizer;

/** Sampled at temperature 1: NaN logits then leave nothing to draw from (greedy would take token 0). */
function sequence(id: string, prompt: number[]): Sequence {
  const params = {
    maxTokens: 4,
    sampling: { ...defaultSamplingParams, temperature: 1 },
    seed: 1,
    stopTokenIds: [],
    ignoreEos: false,
    topLogprobs: null,
  };
  return new Sequence(id, prompt, params, detokenizer);
}

function engineWith(model: StandInModel, ...seqs: Sequence[]): Engine {
  const engine = new Engine(model as unknown as ModelRunner, new Scheduler(new BlockManager(16, 4), { maxNumSeqs: 8, maxBatchTokens: 64 }));
  for (const seq of seqs) engine.add(seq);
  return engine;
}

const ends = (events: SequenceEvent[]) => events.filter((e) => e.event.type !== 'token').map((e) => [e.seqId, e.event.type]);

describe('engine step failures', () => {
  it('ends only the sequence that cannot be sampled; the others in the step go on', async () => {
    const model = new StandInModel();
    const engine = engineWith(model, sequence('healthy', [1, 2]), sequence('poisoned', [POISON, 2]));
    const first = (await engine.step()).events;
    expect(ends(first)).toEqual([['poisoned', 'error']]);
    expect(first.find((e) => e.event.type === 'error')?.event).toMatchObject({
      kind: 'internal',
      message: expect.stringContaining('could not sample'),
    });
    expect(first.filter((e) => e.event.type === 'token').map((e) => e.seqId)).toEqual(['healthy']);
    expect(engine.stats()).toMatchObject({ numRunning: 1, numWaiting: 0 });
    const second = (await engine.step()).events;
    expect(second.map((e) => [e.seqId, e.event.type])).toEqual([['healthy', 'token']]);
  });

  it('a failed step still delivers the end of a sequence cancelled before it: every sequence gets exactly one', async () => {
    const model = new StandInModel();
    const engine = engineWith(model, sequence('cancelled', [1, 2]), sequence('running', [3, 4]));
    await engine.step();
    expect(engine.cancel('cancelled')).toBe(true);
    model.broken = true;
    await expect(engine.step()).rejects.toThrow('the model broke');
    const events = engine.failAll('internal error while generating');
    expect(ends(events)).toEqual([
      ['cancelled', 'finished'],
      ['running', 'error'],
    ]);
    expect(events[0].event).toMatchObject({ finishReason: 'abort' });
    expect(engine.hasWork).toBe(false);
    // Nothing is delivered twice.
    expect(engine.failAll('again')).toEqual([]);
  });
});
