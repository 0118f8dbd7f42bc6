// One model step over several sequences at once must give each sequence exactly what it
// gets alone: prefills of different lengths side by side, and prefills mixed with decodes;
// both with the WebAssembly attention kernel (decodes and short chunks) and with ONNX
// Runtime's graphs alone (the batched decode graph).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceDeepseek } from '../reference/deepseek-reference.ts';
import { argmax, logitRows, maxAbsDiff } from '../helpers/logits.ts';
import { openRunner, testTokens, type OpenedRunner, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const VOCAB = 32000;
const TOP_K = 2;

const rows = (logits: Float32Array, from: number, count: number): Float32Array => logitRows(logits, VOCAB, from, count);
const maxDiff = maxAbsDiff;

describe.each(['wasm', 'onnx'] as const)('batched forward, %s attention', (attention) => {
  let model: TinyModel;
  let opened: OpenedRunner;
  let reference: ReferenceDeepseek;

  beforeAll(async () => {
    model = writeTinyModel({}, 11);
    opened = await openRunner(model, 'fp32', 4, 1, 16, attention);
    reference = ReferenceDeepseek.load(model.dir);
  });
  afterAll(async () => {
    await opened?.release();
    model?.remove();
  });

  it('prefills of different lengths in one step match each sequence run alone', async () => {
    const prompts = [testTokens(5, 1), testTokens(17, 2), testTokens(32, 3), testTokens(1, 4)];
    const caches = prompts.map(() => opened.newCache());
    const batched = await opened.runner.step(prompts.map((tokens, i) => ({ tokens, cache: caches[i], logits: 'all' as const })));
    // With the kernel it took the one-token prompt, and the core graph the others.
    const plan = opened.runner.sessions.shards.localAttention.planFor(0, 5 + 17 + 32 + 1);
    expect(plan.kernel.map((s) => s.numTokens)).toEqual(attention === 'wasm' ? [1] : []);
    expect(plan.single.map((s) => s.slot.numTokens)).toEqual(attention === 'wasm' ? [5, 17, 32] : [5, 17, 32, 1]);
    let row = 0;
    for (const tokens of prompts) {
      const expected = reference.newSequence().forward(tokens);
      const got = rows(batched.logits, row, tokens.length);
      expect(
        maxDiff(
          got,
          expected.logits.flatMap((r) => Array.from(r)),
        ),
      ).toBeLessThanOrEqual(1e-4);
      const experts = Array.from({ length: tokens.length }, (_, t) =>
        batched.routing.map((route) => Array.from(route.expertIds.subarray((row + t) * TOP_K, (row + t + 1) * TOP_K))),
      );
      expect(experts).toEqual(expected.experts);
      row += tokens.length;
    }
  });

  it('decodes and prefills mixed in one step match separate runs', async () => {
    // Sequence A prefills 9 tokens, then decodes while B prefills 23 in the same steps.
    const a = testTokens(9, 5);
    const b = testTokens(23, 6);
    const cacheA = opened.newCache();
    const cacheB = opened.newCache();
    const refA = reference.newSequence();
    const refB = reference.newSequence();
    await opened.runner.step([{ tokens: a, cache: cacheA, logits: 'last' }]);
    const lastA = refA.forward(a).logits.at(-1)!;
    let nextA = argmax(lastA);
    const mixed = await opened.runner.step([
      { tokens: [nextA], cache: cacheA, logits: 'last' },
      { tokens: b, cache: cacheB, logits: 'last' },
    ]);
    const expectedA = refA.forward([nextA]).logits[0];
    const expectedB = refB.forward(b).logits.at(-1)!;
    expect(maxDiff(rows(mixed.logits, 0, 1), expectedA)).toBeLessThanOrEqual(1e-4);
    expect(maxDiff(rows(mixed.logits, 1, 1), expectedB)).toBeLessThanOrEqual(1e-4);
    // Then both decode together for a few steps.
    nextA = argmax(expectedA);
    let nextB = argmax(expectedB);
    for (let step = 0; step < 4; step++) {
      const both = await opened.runner.step([
        { tokens: [nextA], cache: cacheA, logits: 'last' },
        { tokens: [nextB], cache: cacheB, logits: 'last' },
      ]);
      const refStepA = refA.forward([nextA]).logits[0];
      const refStepB = refB.forward([nextB]).logits[0];
      expect(maxDiff(rows(both.logits, 0, 1), refStepA)).toBeLessThanOrEqual(1e-4);
      expect(maxDiff(rows(both.logits, 1, 1), refStepB)).toBeLessThanOrEqual(1e-4);
      nextA = argmax(refStepA);
      nextB = argmax(refStepB);
    }
    expect(cacheA.numCachedTokens).toBe(9 + 1 + 4);
    expect(cacheB.numCachedTokens).toBe(23 + 4);
  });
});

// 'split': each shard runs its slice of every chosen expert; 'replicate': whole experts, dealt out.
describe.each(['split', 'replicate'] as const)('tensor-parallel shards, routed experts %s', (placement) => {
  let model: TinyModel;
  let sharded: OpenedRunner;
  let reference: ReferenceDeepseek;

  beforeAll(async () => {
    model = writeTinyModel({ num_experts_per_tok: 3, norm_topk_prob: true }, 17);
    sharded = await openRunner(model, 'fp32', 4, 2, 16, 'wasm', placement);
    expect(sharded.runner.sessions.manifest.expertPlacement).toBe(placement);
    reference = ReferenceDeepseek.load(model.dir);
  });
  afterAll(async () => {
    await sharded?.release();
    model?.remove();
  });

  it.each([
    ['whole steps', 512],
    ['jobs cut into 5-row chunks, across sequences and mid-prompt', 5],
  ])(
    'two shards (a worker thread each: half the heads with their cache, half of every MLP and the LM head) match the reference: %s',
    async (_, chunkRows) => {
      sharded.runner.sessions.shards.chunkRows = chunkRows;
      expectShardedMatchesReference();
    },
  );

  it('a step that fails after announcing its block tables to the shards leaves them in step', () => {
    sharded.runner.sessions.shards.chunkRows = 512;
    // The token id is refused while embedding, after the step's plan went to shard 1.
    expect(() => sharded.runner.step([{ tokens: [1, VOCAB + 7], cache: sharded.newCache(), logits: 'last' }])).toThrow(RangeError);
    expectShardedMatchesReference();
  });

  function expectShardedMatchesReference(): void {
    const prompts = [testTokens(30, 21), testTokens(7, 22)];
    const caches = prompts.map(() => sharded.newCache());
    const refs = prompts.map(() => reference.newSequence());
    let tokens = prompts;
    for (let step = 0; step < 6; step++) {
      const got = sharded.runner.step(tokens.map((t, i) => ({ tokens: t, cache: caches[i], logits: 'all' as const })));
      let row = 0;
      const next: number[][] = [];
      tokens.forEach((t, i) => {
        const expected = refs[i].forward(t);
        expect(
          maxDiff(
            rows(got.logits, row, t.length),
            expected.logits.flatMap((r) => Array.from(r)),
          ),
        ).toBeLessThanOrEqual(1e-4);
        const experts = Array.from({ length: t.length }, (_, j) =>
          got.routing.map((route) => Array.from(route.expertIds.subarray((row + j) * 3, (row + j + 1) * 3))),
        );
        expect(experts).toEqual(expected.experts);
        next.push([argmax(expected.logits.at(-1)!)]);
        row += t.length;
      });
      tokens = next;
    }
  }
});
