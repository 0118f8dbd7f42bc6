// A KV cache pool sized for exactly one sequence of `numTokens`, with that sequence's blocks
// allocated: what the single-stream model benchmarks need.
import type { ModelSpec } from '../models/spec.ts';
import { BlockManager, SequenceBlocks } from '../server/engine/block-manager.ts';
import { KvCachePool } from '../server/engine/kv-cache.ts';
import { kvCacheShape } from '../server/engine/kv-cache-shape.ts';

export function soloCache(spec: ModelSpec, numTokens: number, blockSize = 16): { pool: KvCachePool; newSequence(): SequenceBlocks } {
  const numBlocks = Math.ceil(numTokens / blockSize);
  const pool = new KvCachePool(kvCacheShape(spec), numBlocks, blockSize);
  const blocks = new BlockManager(numBlocks, blockSize);
  let current: SequenceBlocks | null = null;
  return {
    pool,
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
export function batchCaches(spec: ModelSpec, numTokens: number, count: number, blockSize = 16): { pool: KvCachePool; sequences: SequenceBlocks[] } {
  const blocksEach = Math.ceil(numTokens / blockSize);
  const pool = new KvCachePool(kvCacheShape(spec), blocksEach * count, blockSize);
  const blocks = new BlockManager(blocksEach * count, blockSize);
  const sequences = Array.from({ length: count }, () => {
    const seq = new SequenceBlocks();
    blocks.allocate(seq, [], numTokens, 0);
    return seq;
  });
  return { pool, sequences };
}
