// A KV cache sized for exactly one sequence of `numTokens` (or `count` of them), with those
// sequences' blocks allocated: what the model benchmarks need. The runner allocates the pool.
import type { KvCacheSize } from '../runtime/attention/attention-shard.ts';
import { BlockManager, SequenceBlocks } from '../server/engine/block-manager.ts';

export function soloCache(numTokens: number, blockSize = 16): { size: KvCacheSize; newSequence(): SequenceBlocks } {
  const numBlocks = Math.ceil(numTokens / blockSize);
  const blocks = new BlockManager(numBlocks, blockSize);
  let current: SequenceBlocks | null = null;
  return {
    size: { numBlocks, blockSize },
    // Each new sequence reuses the pool from the start (the previous one is released).
    newSequence: () => {
      if (current) blocks.release(current);
      current = new SequenceBlocks();
      blocks.allocate(current, [], numTokens, 0);
      return current;
    },
  };
}

/** A pool holding `count` sequences of `numTokens` each, and those sequences' blocks. */
export function batchCaches(numTokens: number, count: number, blockSize = 16): { size: KvCacheSize; sequences: SequenceBlocks[] } {
  const blocksEach = Math.ceil(numTokens / blockSize);
  const blocks = new BlockManager(blocksEach * count, blockSize);
  const sequences = Array.from({ length: count }, () => {
    const seq = new SequenceBlocks();
    blocks.allocate(seq, [], numTokens, 0);
    return seq;
  });
  return { size: { numBlocks: blocksEach * count, blockSize }, sequences };
}
