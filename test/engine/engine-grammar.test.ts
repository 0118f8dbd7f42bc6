// The engine's side of constrained decoding with a stand-in model and hand-driven mask slots
// (what the grammar worker writes): the mask decides the token, a mask still being computed
// holds back only its own sequence, a failed grammar ends only its own, a stop token the mask
// allowed completes it, and a sequence's matcher is released when it leaves.
import { describe, expect, it } from 'vitest';
import type { ModelRunner } from '../../runtime/model-runner.ts';
import type { StepResult, StepSequence } from '../../runtime/step-batch.ts';
import { defaultSamplingParams } from '../../server/engine/api.ts';
import { BlockManager } from '../../server/engine/block-manager.ts';
import type { IncrementalDetokenizer } from '../../server/engine/detokenizer.ts';
import { Engine } from '../../server/engine/engine.ts';
import { createMaskSlot, SLOT_FAILED, SLOT_READY, slotViews } from '../../server/engine/grammar/grammar-protocol.ts';
import { type GrammarService, SequenceConstraint } from '../../server/engine/grammar/grammar-service.ts';
import type { SequenceEvent } from '../../server/engine/protocol.ts';
import { Scheduler } from '../../server/engine/scheduler.ts';
import { Sequence } from '../../server/engine/sequence.ts';

const VOCAB = 64;
const EOS = 2;
/** The stand-in model's favourite: the token every unconstrained sequence gets. */
const FAVOURITE = 3;

class StandInModel {
  readonly spec = { vocabSize: VOCAB };
  numSteps = 0;

  step(inputs: StepSequence[]): StepResult {
    this.numSteps++;
    const rows = inputs.filter((input) => input.logits === 'last');
    const logits = new Float32Array(rows.length * VOCAB);
    for (let r = 0; r < rows.length; r++) for (let t = 0; t < VOCAB; t++) logits[r * VOCAB + t] = t === FAVOURITE ? 20 : -t / VOCAB;
    let numTokens = 0;
    for (const input of inputs) {
      input.cache.numCachedTokens += input.tokens.length;
      numTokens += input.tokens.length;
    }
    return { logits, routing: [], moeLayers: [], numTokens };
  }
}

/** A grammar worker stand-in: records the tokens posted and the matchers released. */
class SlotDriver {
  readonly posted: Array<[string, number]> = [];
  readonly released: string[] = [];
  readonly service = {
    post: (message: { type: string; items?: Array<[string, number]> }) => this.posted.push(...(message.items ?? [])),
    release: (constraint: SequenceConstraint) => this.released.push(constraint.seqId),
  } as unknown as GrammarService;

  /** A constraint whose mask allows exactly `allowed`, ready. */
  constraint(seqId: string, allowed: number[]): { constraint: SequenceConstraint; set(state: number, allowed?: number[]): void } {
    const slot = createMaskSlot(VOCAB);
    const { state, mask } = slotViews(slot);
    const set = (value: number, tokens: number[] = allowed): void => {
      mask.fill(0);
      for (const t of tokens) mask[t >>> 5] |= 1 << (t & 31);
      Atomics.store(state, 0, value);
      Atomics.notify(state, 0);
    };
    set(SLOT_READY);
    return { constraint: new SequenceConstraint(this.service, seqId, slot, new Set([EOS])), set };
  }
}

const detokenizer = { push: () => '', flush: () => '' } as unknown as IncrementalDetokenizer;

function sequence(id: string, maxTokens = 4, ignoreEos = false): Sequence {
  const params = {
    maxTokens,
    sampling: { ...defaultSamplingParams, temperature: 0 },
    seed: 1,
    stopTokenIds: [EOS],
    ignoreEos,
    topLogprobs: 2,
  };
  return new Sequence(id, [5, 6, 7], params, detokenizer);
}

function engineWith(model: StandInModel, ...seqs: Sequence[]): Engine {
  const engine = new Engine(model as unknown as ModelRunner, new Scheduler(new BlockManager(16, 4), { maxNumSeqs: 8, maxBatchTokens: 64 }));
  for (const seq of seqs) engine.add(seq);
  return engine;
}

const tokensOf = (events: SequenceEvent[], seqId: string): number[] =>
  events.flatMap((e) => (e.seqId === seqId && e.event.type === 'token' ? [e.event.token] : []));

describe('the engine with grammar constraints', () => {
  it('samples within the mask, keeps the raw logprobs, and posts each token to the grammar', async () => {
    const driver = new SlotDriver();
    const seq = sequence('bound');
    const { constraint } = driver.constraint('bound', [9, 10]);
    seq.grammar = constraint;
    const engine = engineWith(new StandInModel(), seq, sequence('free'));
    const { events } = await engine.step();
    expect(tokensOf(events, 'free')).toEqual([FAVOURITE]);
    expect(tokensOf(events, 'bound')).toEqual([9]);
    const bound = events.find((e) => e.seqId === 'bound' && e.event.type === 'token')?.event;
    // Logprobs are the model's own: the favourite is still its top choice.
    expect(bound?.type === 'token' && bound.logprob?.top[0].token).toBe(FAVOURITE);
    expect(driver.posted).toEqual([['bound', 9]]);
    expect(constraint.status).toBe('pending');
  });

  it('a mask not yet ready holds back only its sequence; it is sampled once the mask comes', async () => {
    const driver = new SlotDriver();
    const model = new StandInModel();
    const seq = sequence('bound', 8);
    const slot = driver.constraint('bound', [11]);
    seq.grammar = slot.constraint;
    const engine = engineWith(model, seq, sequence('free', 8));
    await engine.step(); // both sample; the bound one's next mask is now pending
    const second = await engine.step();
    expect(tokensOf(second.events, 'free')).toEqual([FAVOURITE]);
    expect(tokensOf(second.events, 'bound')).toEqual([]); // deferred: its logits are kept
    expect(seq.deferredLogits).not.toBeNull();
    const third = await engine.step();
    expect(tokensOf(third.events, 'bound')).toEqual([]); // not scheduled while deferred
    expect(seq.numUncachedTokens).toBe(0);
    slot.set(SLOT_READY, [12]);
    const fourth = await engine.step();
    expect(tokensOf(fourth.events, 'bound')).toEqual([12]);
    expect(seq.outputTokens).toEqual([11, 12]);
  });

  it('with only deferred sequences, the step waits for a mask instead of spinning', async () => {
    const driver = new SlotDriver();
    const model = new StandInModel();
    const seq = sequence('bound', 8);
    const slot = driver.constraint('bound', [11]);
    seq.grammar = slot.constraint;
    const engine = engineWith(model, seq);
    await engine.step();
    await engine.step(); // deferred now
    setTimeout(() => slot.set(SLOT_READY, [13]), 50);
    const before = model.numSteps;
    const waited = await engine.step(); // nothing to run: resolves when the mask comes
    expect(model.numSteps).toBe(before);
    expect(waited.events).toEqual([]);
    const next = await engine.step();
    expect(tokensOf(next.events, 'bound')).toEqual([13]);
  });

  it('a failed grammar ends its own sequence with an error, and a stop token the mask allows completes one', async () => {
    const driver = new SlotDriver();
    const broken = sequence('broken', 8);
    const brokenSlot = driver.constraint('broken', [11]);
    broken.grammar = brokenSlot.constraint;
    const done = sequence('done', 8, true); // ignore_eos: the grammar still ends it
    done.grammar = driver.constraint('done', [EOS]).constraint;
    const engine = engineWith(new StandInModel(), broken, done, sequence('free', 8));
    const first = await engine.step();
    expect(tokensOf(first.events, 'done')).toEqual([EOS]);
    expect(first.events.find((e) => e.seqId === 'done' && e.event.type === 'finished')?.event).toMatchObject({ finishReason: 'stop' });
    brokenSlot.set(SLOT_FAILED);
    const second = await engine.step();
    const ends = second.events.filter((e) => e.event.type !== 'token').map((e) => [e.seqId, e.event.type]);
    expect(ends).toEqual([['broken', 'error']]);
    expect(tokensOf(second.events, 'free')).toEqual([FAVOURITE]);
    expect(driver.posted.filter(([id]) => id === 'done')).toEqual([]); // a complete grammar takes no more tokens
    expect(driver.released.sort()).toEqual(['broken', 'done']);
  });

  it('a cancelled sequence releases its matcher', async () => {
    const driver = new SlotDriver();
    const seq = sequence('bound', 8);
    seq.grammar = driver.constraint('bound', [11]).constraint;
    const engine = engineWith(new StandInModel(), seq);
    await engine.step();
    engine.cancel('bound');
    await engine.step();
    expect(driver.released).toEqual(['bound']);
  });
});
