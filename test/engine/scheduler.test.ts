// The scheduler on its own, with model steps simulated: a scheduled chunk becomes cached and,
// when it completes the sequence's uncached tokens, the sequence gains a token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockManager } from '../../server/engine/block-manager.ts';
import { IncrementalDetokenizer } from '../../server/engine/detokenizer.ts';
import { defaultSamplingParams, type SchedulerLimits } from '../../server/engine/api.ts';
import { type ScheduledChunk, Scheduler } from '../../server/engine/scheduler.ts';
import { Sequence } from '../../server/engine/sequence.ts';
import { TextTokenizer } from '../../server/tokenizer/tokenizer.ts';
import { testTokens, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const BLOCK = 4;
let model: TinyModel;
let tokenizer: TextTokenizer;

beforeAll(() => {
  model = writeTinyModel();
  tokenizer = TextTokenizer.load(model.dir);
});
afterAll(() => model?.remove());

let nextId = 0;
function sequence(promptLength: number, maxTokens = 100): Sequence {
  const prompt = testTokens(promptLength, ++nextId);
  const params = { maxTokens, sampling: defaultSamplingParams, seed: 1, stopTokenIds: [], ignoreEos: false, topLogprobs: null };
  return new Sequence(`seq-${nextId}`, prompt, params, new IncrementalDetokenizer(tokenizer, prompt));
}

function makeScheduler(numBlocks: number, limits: Partial<SchedulerLimits> = {}): Scheduler {
  return new Scheduler(new BlockManager(numBlocks, BLOCK), { maxNumSeqs: 16, maxBatchTokens: 64, ...limits });
}

/** What the engine does after the model step: cache the chunk, sample when it completes. */
function simulateStep(scheduler: Scheduler, chunks: ScheduledChunk[]): void {
  for (const { seq, numTokens, completes } of chunks) {
    expect(seq.blocks.blockIds.length * BLOCK).toBeGreaterThanOrEqual(seq.blocks.numCachedTokens + numTokens);
    seq.blocks.numCachedTokens += numTokens;
    scheduler.blocks.registerFullBlocks(seq.blocks, () => seq.allTokens());
    if (completes) seq.append(7);
  }
}

const shape = (chunks: ScheduledChunk[]): Array<[string, number, boolean]> => chunks.map((c) => [c.seq.id, c.numTokens, c.completes]);

describe('Scheduler', () => {
  it('gives running sequences their decode tokens first and fills the rest of the budget with prompt chunks', () => {
    const scheduler = makeScheduler(64, { maxBatchTokens: 8 });
    const [a, b, c] = [sequence(3), sequence(2), sequence(20)];
    scheduler.add(a);
    scheduler.add(b);
    expect(shape(scheduler.schedule())).toEqual([
      [a.id, 3, true],
      [b.id, 2, true],
    ]);
    a.blocks.numCachedTokens = 3;
    a.append(7);
    b.blocks.numCachedTokens = 2;
    b.append(7);
    scheduler.add(c);
    const chunks = scheduler.schedule();
    expect(shape(chunks)).toEqual([
      [a.id, 1, true],
      [b.id, 1, true],
      [c.id, 6, false],
    ]);
    simulateStep(scheduler, chunks);
    expect(shape(scheduler.schedule())).toEqual([
      [a.id, 1, true],
      [b.id, 1, true],
      [c.id, 6, false],
    ]);
  });

  it('with a step time budget, keeps decoding every step while a long prompt is read in smaller chunks', () => {
    const scheduler = makeScheduler(128, { maxBatchTokens: 256, maxStepMs: 100 });
    const [a, b] = [sequence(3), sequence(2)];
    scheduler.add(a);
    scheduler.add(b);
    simulateStep(scheduler, scheduler.schedule());
    // What the engine would measure: decoding alone 40 ms, each prompt token 2 ms more.
    const decodes = scheduler.schedule();
    scheduler.recordStep(decodes, 40);
    simulateStep(scheduler, decodes);
    const first = sequence(60);
    scheduler.add(first);
    const learning = scheduler.schedule();
    // Nothing has taught the budget a prompt token's cost yet: the whole prompt goes.
    expect(shape(learning)).toEqual([
      [a.id, 1, true],
      [b.id, 1, true],
      [first.id, 60, true],
    ]);
    scheduler.recordStep(learning, 40 + 2 * 60);
    simulateStep(scheduler, learning);
    const long = sequence(100);
    scheduler.add(long);
    // (100 - 40) / 2 = 30 prompt tokens fit next to the three decodes.
    const bounded = scheduler.schedule();
    expect(shape(bounded)).toEqual([
      [a.id, 1, true],
      [b.id, 1, true],
      [first.id, 1, true],
      [long.id, 30, false],
    ]);
  });

  it('reads a long prompt in budget-sized chunks and samples only after the last', () => {
    const scheduler = makeScheduler(64, { maxBatchTokens: 16 });
    const seq = sequence(40);
    scheduler.add(seq);
    const sizes: Array<[number, boolean]> = [];
    while (seq.outputTokens.length === 0) {
      const chunks = scheduler.schedule();
      sizes.push([chunks[0].numTokens, chunks[0].completes]);
      simulateStep(scheduler, chunks);
    }
    expect(sizes).toEqual([
      [16, false],
      [16, false],
      [8, true],
    ]);
    expect(seq.blocks.blockIds).toHaveLength(10);
  });

  it('caps the running set and admits the waiting in arrival order as room frees up', () => {
    const scheduler = makeScheduler(64, { maxNumSeqs: 2 });
    const seqs = [sequence(5), sequence(6), sequence(2), sequence(3)];
    for (const seq of seqs) scheduler.add(seq);
    simulateStep(scheduler, scheduler.schedule());
    expect(scheduler.running.map((s) => s.id)).toEqual([seqs[0].id, seqs[1].id]);
    expect(scheduler.waiting.map((s) => s.id)).toEqual([seqs[2].id, seqs[3].id]);
    scheduler.remove(seqs[0]);
    const chunks = scheduler.schedule();
    expect(shape(chunks)).toEqual([
      [seqs[1].id, 1, true],
      [seqs[2].id, 2, true],
    ]);
  });

  it('waits first come, first served: a later request that would fit does not overtake one that does not', () => {
    const scheduler = makeScheduler(6);
    const [big, huge, small] = [sequence(13), sequence(20), sequence(2)];
    for (const seq of [big, huge, small]) scheduler.add(seq);
    expect(shape(scheduler.schedule())).toEqual([[big.id, 13, true]]); // 4 blocks; 2 left, huge needs 5
    expect(scheduler.waiting).toEqual([huge, small]);
  });

  it('preempts the newest running sequence when the cache runs out, then recomputes it from its prompt and output', () => {
    const scheduler = makeScheduler(4); // 16 tokens in all
    const [old, young] = [sequence(7), sequence(6)];
    scheduler.add(old);
    scheduler.add(young);
    simulateStep(scheduler, scheduler.schedule()); // 2 + 2 blocks: the cache is full
    expect(scheduler.blocks.numFreeBlocks).toBe(0);
    simulateStep(scheduler, scheduler.schedule()); // old 8 tokens, young 7: still fits
    const chunks = scheduler.schedule(); // old needs a third block: young goes
    expect(shape(chunks)).toEqual([[old.id, 1, true]]);
    expect(scheduler.numPreemptions).toBe(1);
    expect(scheduler.waiting).toEqual([young]);
    expect(young.blocks.blockIds).toEqual([]);
    expect(young.numUncachedTokens).toBe(6 + 2); // its prompt and both tokens it generated
    simulateStep(scheduler, chunks);
    scheduler.remove(old); // old finishes: young comes back
    const hitsBefore = scheduler.blocks.numPrefixHitTokens;
    const back = scheduler.schedule();
    // Its first block, released but not handed out since, is still cached: the rest is recomputed.
    expect(shape(back)).toEqual([[young.id, 4, true]]);
    expect(scheduler.blocks.numPrefixHitTokens - hitsBefore).toBe(4);
    expect(young.uncachedTokens(4)).toEqual(young.allTokens().slice(4));
  });

  it('admits nobody while the running sequences hold the cache', () => {
    const scheduler = makeScheduler(3);
    const [a, b] = [sequence(8), sequence(3)];
    scheduler.add(a);
    scheduler.add(b);
    simulateStep(scheduler, scheduler.schedule()); // a: 2 blocks (8 tokens); b: 1 block (3)
    const chunks = scheduler.schedule(); // a needs a third block and b, the newer, goes
    expect(shape(chunks)).toEqual([[a.id, 1, true]]);
    expect(scheduler.waiting).toEqual([b]);
    simulateStep(scheduler, chunks);
    const next = scheduler.schedule(); // b may not come back while a holds all three blocks
    expect(shape(next)).toEqual([[a.id, 1, true]]);
  });

  it('preempts the sequence itself when it is the newest running one', () => {
    const scheduler = makeScheduler(3);
    const [a, b] = [sequence(3), sequence(8)];
    scheduler.add(a);
    scheduler.add(b);
    simulateStep(scheduler, scheduler.schedule()); // a: 1 block (3 of 4 used); b: 2 full blocks
    const chunks = scheduler.schedule(); // a's next token fits; b's needs a third block
    expect(shape(chunks)).toEqual([[a.id, 1, true]]);
    expect(scheduler.waiting).toEqual([b]);
    expect(scheduler.numPreemptions).toBe(1);
  });
});
