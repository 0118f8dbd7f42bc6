// The KV block allocator on its own: allocation and release, and prefix reuse by block hash.
import { describe, expect, it } from 'vitest';
import { BlockManager, SequenceBlocks } from '../../server/engine/block-manager.ts';

const BLOCK = 4;
const range = (start: number, count: number): number[] => Array.from({ length: count }, (_, i) => start + i);

/** Allocates `tokens.length` positions for a new sequence, as if it then computed them all. */
function admit(blocks: BlockManager, tokens: number[]): SequenceBlocks {
  const seq = new SequenceBlocks();
  const matched = blocks.matchPrefix(seq, tokens);
  blocks.allocate(seq, matched, tokens.length, tokens.length);
  seq.numCachedTokens = tokens.length;
  blocks.registerFullBlocks(seq, () => tokens);
  return seq;
}

describe('BlockManager', () => {
  it('hands out only the blocks a sequence fills and takes them back', () => {
    const blocks = new BlockManager(8, BLOCK);
    const seq = new SequenceBlocks();
    blocks.allocate(seq, [], 5, 5);
    expect(seq.blockIds).toHaveLength(2);
    expect(blocks.numFreeBlocks).toBe(6);
    expect(blocks.canGrow(seq, 8)).toBe(true);
    blocks.grow(seq, 8);
    expect(seq.blockIds).toHaveLength(2); // 8 tokens still fit in two blocks of 4
    blocks.grow(seq, 9);
    expect(seq.blockIds).toHaveLength(3);
    expect(new Set(seq.blockIds).size).toBe(3);
    expect(blocks.canGrow(seq, 8 * BLOCK)).toBe(true);
    expect(blocks.canGrow(seq, 8 * BLOCK + 1)).toBe(false);
    expect(() => blocks.grow(seq, 100)).toThrow(/blocks needed/);
    blocks.release(seq);
    expect(seq.blockIds).toEqual([]);
    expect(seq.numCachedTokens).toBe(0);
    expect(blocks.numFreeBlocks).toBe(8);
    expect(blocks.numUsedBlocks).toBe(0);
  });

  it('reuses the full blocks of a shared prefix and counts the hit', () => {
    const blocks = new BlockManager(16, BLOCK);
    const system = range(100, 10); // two full blocks and two tokens of a third
    const first = admit(blocks, [...system, 1, 2, 3]);
    const second = new SequenceBlocks();
    const tokens = [...system, 7, 8];
    const matched = blocks.matchPrefix(second, tokens);
    expect(matched).toEqual(first.blockIds.slice(0, 2));
    blocks.allocate(second, matched, tokens.length, tokens.length);
    expect(second.numCachedTokens).toBe(2 * BLOCK);
    expect(second.blockIds.slice(0, 2)).toEqual(first.blockIds.slice(0, 2));
    expect(second.blockIds[2]).not.toBe(first.blockIds[2]); // the partial block is its own
    expect(blocks.numPrefixHitTokens).toBe(2 * BLOCK);
    expect(blocks.numPrefixQueryTokens).toBe(13 + 12);
    // Shared blocks return to the free list only when their last holder lets go.
    const used = blocks.numUsedBlocks;
    blocks.release(first);
    expect(blocks.numUsedBlocks).toBe(used - 2); // first's two own blocks; the shared two stay
  });

  it('always leaves the last token to compute, even when the whole prompt is cached', () => {
    const blocks = new BlockManager(8, BLOCK);
    const prompt = range(10, 2 * BLOCK);
    admit(blocks, prompt);
    const again = new SequenceBlocks();
    expect(blocks.matchPrefix(again, prompt)).toHaveLength(1);
  });

  it('keeps released prefixes matchable until their blocks are handed out again, oldest first', () => {
    const blocks = new BlockManager(4, BLOCK);
    const a = admit(blocks, range(0, 2 * BLOCK + 1)); // 3 blocks, 2 full
    blocks.release(a);
    expect(blocks.numFreeBlocks).toBe(4);
    expect(blocks.matchPrefix(new SequenceBlocks(), range(0, 2 * BLOCK + 1))).toHaveLength(2);
    // Fresh blocks come from the never-used one first, then from a's tail (released before
    // its head): its partial third block, then its second, and its first last of all.
    const matchLength = (): number => blocks.matchPrefix(new SequenceBlocks(), range(0, 2 * BLOCK + 1)).length;
    const b = new SequenceBlocks();
    blocks.allocate(b, [], 2 * BLOCK, 0);
    expect(matchLength()).toBe(2);
    blocks.grow(b, 3 * BLOCK);
    expect(matchLength()).toBe(1);
    blocks.grow(b, 4 * BLOCK);
    expect(matchLength()).toBe(0);
  });

  it('counts idle matched blocks against the free ones when checking room', () => {
    const blocks = new BlockManager(3, BLOCK);
    const prompt = range(0, 2 * BLOCK + 1);
    blocks.release(admit(blocks, prompt)); // all three free, two of them a cached prefix
    const seq = new SequenceBlocks();
    const matched = blocks.matchPrefix(seq, prompt);
    expect(matched).toHaveLength(2);
    expect(blocks.canAllocate(matched, 3 * BLOCK)).toBe(true);
    expect(blocks.canAllocate(matched, 3 * BLOCK + 1)).toBe(false);
    blocks.allocate(seq, matched, 3 * BLOCK, prompt.length);
    expect(blocks.numFreeBlocks).toBe(0);
  });

  it('never registers the same prefix twice: the first block computed stays the entry', () => {
    const blocks = new BlockManager(8, BLOCK);
    const prompt = range(0, BLOCK + 1);
    // Both computed before either registered (admitted in the same step).
    const a = new SequenceBlocks();
    const b = new SequenceBlocks();
    for (const seq of [a, b]) {
      blocks.allocate(seq, [], prompt.length, prompt.length);
      seq.numCachedTokens = prompt.length;
    }
    blocks.registerFullBlocks(a, () => prompt);
    blocks.registerFullBlocks(b, () => prompt);
    expect(blocks.matchPrefix(new SequenceBlocks(), prompt)).toEqual([a.blockIds[0]]);
    blocks.release(a);
    blocks.release(b);
    expect(blocks.numFreeBlocks).toBe(8);
  });
});
