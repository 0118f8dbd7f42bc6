// How a step's attention calls are planned: prompt chunks one call each, decoding sequences
// in batched calls grouped by length so that padding to a group's longest stays small.
import { describe, expect, it } from 'vitest';
import type { GraphSession } from '../../kernels/session.ts';
import { KvCachePool } from '../../runtime/attention/kv-cache.ts';
import { PagedAttention } from '../../runtime/attention/paged-attention.ts';
import type { StepSlot } from '../../runtime/step-batch.ts';

const BLOCK = 16;
// plan() builds tensors only; it never runs a graph.
const unusedGraph = {} as GraphSession;

function decodingSlot(row: number, blocks: number, firstBlock: number): StepSlot {
  const start = blocks * BLOCK - 1; // the new token is the last of its `blocks` blocks
  return {
    row,
    numTokens: 1,
    start,
    cache: { blockIds: Array.from({ length: blocks }, (_, i) => firstBlock + i), numCachedTokens: start },
  };
}

describe('paged attention plan', () => {
  const pool = new KvCachePool({ numLayers: 1, numKvHeads: 1, keyHeadDim: 4, valueHeadDim: 4 }, 64, BLOCK);
  const attention = new PagedAttention(pool, 1, 4, unusedGraph, unusedGraph);

  it('groups decoding sequences by length, each group padded by at most a quarter, singletons alone', () => {
    const blocks = [9, 1, 8, 2, 1, 8];
    let next = 0;
    const slots = blocks.map((n, row) => decodingSlot(row, n, (next += n) - n));
    const prefill: StepSlot = { row: 6, numTokens: 5, start: 0, cache: { blockIds: [60], numCachedTokens: 0 } };
    const plan = attention.plan([...slots, prefill]);
    expect(plan.decode.map((g) => g.rows)).toEqual([
      [1, 4],
      [2, 5, 0],
    ]);
    // Padding rows repeat the sequence's first block and are masked.
    expect(Array.from(plan.decode[0].blockIds.data as Int32Array)).toEqual([slots[1].cache.blockIds[0], slots[4].cache.blockIds[0]]);
    expect(plan.decode[1].blockIds.dims).toEqual([3, 9]);
    expect(plan.single.map((p) => p.slot.row)).toEqual([3, 6]);
  });

  it('has no batched call without a decode graph', () => {
    const plan = new PagedAttention(pool, 1, 4, unusedGraph, null).plan([decodingSlot(0, 2, 0), decodingSlot(1, 2, 2)]);
    expect(plan.decode).toEqual([]);
    expect(plan.single).toHaveLength(2);
  });
});
