// How many blocks the KV cache pool gets: a token count when one is given, else whatever fits
// in a memory budget, but never more than the running set could ever use (max-num-seqs
// sequences of the longest context), so a small model doesn't reserve a gigabyte for nothing.
import { KvCachePool, type KvCacheShape } from '../../runtime/attention/kv-cache.ts';
import type { KvCachePlan, KvCacheSettings } from './api.ts';

export function planKvCache(shape: KvCacheShape, settings: KvCacheSettings, maxNumSeqs: number, maxModelLen: number): KvCachePlan {
  const { blockSize } = settings;
  if (!Number.isSafeInteger(blockSize) || blockSize < 1)
    throw new RangeError(`the KV block size must be a positive integer (got ${blockSize})`);
  const bytesPerToken = KvCachePool.bytesPerToken(shape);
  const wanted = settings.numTokens ?? Math.floor((settings.memoryMib * 2 ** 20) / bytesPerToken);
  const useful = maxNumSeqs * maxModelLen;
  const numBlocks = Math.max(1, Math.floor(Math.min(wanted, useful) / blockSize));
  if (settings.numTokens !== undefined && settings.numTokens < blockSize) {
    throw new RangeError(`the KV cache must hold at least one block of ${blockSize} tokens (got ${settings.numTokens})`);
  }
  return { numBlocks, blockSize, numTokens: numBlocks * blockSize, bytesPerToken };
}
