// Hands out the KV pool's blocks (nano-vllm's shape: check/act pairs, canAllocate/allocate,
// canGrow/grow) and reuses cached prefixes. Every full block is named by a hash of all tokens
// up to its end (chained through the previous block's hash), so two sequences whose prompts
// share a prefix, a common system prompt say, share its blocks. A released block keeps its
// hash and stays reusable until it is handed out again, oldest released first.
import { createHash } from 'node:crypto';
import type { BlockTable } from '../../runtime/attention/kv-cache.ts';

/** A sequence's blocks plus the prefix hashes of its full blocks (kept across preemptions). */
export class SequenceBlocks implements BlockTable {
  blockIds: number[] = [];
  numCachedTokens = 0;
  /** Hash of full block i of the sequence's tokens, computed once. */
  readonly hashes: string[] = [];
  /** Full blocks already entered into the prefix cache. */
  numRegisteredBlocks = 0;

  reset(): void {
    this.blockIds = [];
    this.numCachedTokens = 0;
    this.numRegisteredBlocks = 0;
  }
}

export class BlockManager {
  private readonly refCounts: Int32Array;
  private readonly hashOfBlock: (string | null)[];
  private readonly blockOfHash = new Map<string, number>();
  /** Blocks no sequence holds, in release order (a Set iterates in insertion order). */
  private readonly free = new Set<number>();
  /** Prompt tokens looked up in, and found in, the prefix cache (cumulative). */
  numPrefixQueryTokens = 0;
  numPrefixHitTokens = 0;

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    this.refCounts = new Int32Array(numBlocks);
    this.hashOfBlock = new Array<string | null>(numBlocks).fill(null);
    for (let b = 0; b < numBlocks; b++) this.free.add(b);
  }

  get numFreeBlocks(): number {
    return this.free.size;
  }

  get numUsedBlocks(): number {
    return this.numBlocks - this.free.size;
  }

  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /**
   * Cached blocks holding a prefix of `tokens`, longest first match, covering at most
   * `maxTokens` of them. At least one token is left out so the step that admits the sequence
   * computes the logits it samples from.
   */
  matchPrefix(seq: SequenceBlocks, tokens: readonly number[], maxTokens = tokens.length): number[] {
    const maxBlocks = Math.floor(Math.min(tokens.length - 1, maxTokens) / this.blockSize);
    const matched: number[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const block = this.blockOfHash.get(this.hashAt(seq, tokens, i));
      if (block === undefined) break;
      matched.push(block);
    }
    return matched;
  }

  /** Whether `allocate(seq, matched, numTokens)` would find enough free blocks. */
  canAllocate(matched: number[], numTokens: number): boolean {
    const idleMatched = matched.reduce((n, b) => n + (this.refCounts[b] === 0 ? 1 : 0), 0);
    return this.blocksFor(numTokens) - matched.length <= this.free.size - idleMatched;
  }

  /** Gives an empty sequence the matched prefix blocks (as cached tokens) plus room for `numTokens`. */
  allocate(seq: SequenceBlocks, matched: number[], numTokens: number, numPromptTokens: number): void {
    if (seq.blockIds.length !== 0) throw new Error('allocate: the sequence already holds blocks');
    for (const block of matched) this.take(block);
    seq.blockIds = [...matched];
    seq.numCachedTokens = matched.length * this.blockSize;
    seq.numRegisteredBlocks = matched.length;
    this.numPrefixQueryTokens += numPromptTokens;
    this.numPrefixHitTokens += seq.numCachedTokens;
    this.grow(seq, numTokens);
  }

  canGrow(seq: BlockTable, numTokens: number): boolean {
    return this.blocksFor(numTokens) - seq.blockIds.length <= this.free.size;
  }

  /** Adds fresh blocks until the sequence can hold `numTokens`. */
  grow(seq: BlockTable, numTokens: number): void {
    const needed = this.blocksFor(numTokens) - seq.blockIds.length;
    if (needed > this.free.size) throw new Error(`grow: ${needed} blocks needed, ${this.free.size} free`);
    for (let i = 0; i < needed; i++) {
      const block = this.free.values().next().value as number;
      this.forgetHash(block);
      this.take(block);
      seq.blockIds.push(block);
    }
  }

  /** Returns a sequence's blocks (finished, aborted or preempted); their prefixes stay cached. */
  release(seq: SequenceBlocks): void {
    // Last blocks first into the free list: a prefix's tail is evicted before its head,
    // which keeps the head matchable (a chain is matched from its start).
    for (let i = seq.blockIds.length - 1; i >= 0; i--) {
      const block = seq.blockIds[i];
      if (--this.refCounts[block] === 0) this.free.add(block);
    }
    seq.reset();
  }

  /**
   * Enters the sequence's newly filled full blocks into the prefix cache. `tokensOf` is only
   * called when a block has filled: most decode steps fill none, and building the token list
   * every step for every sequence would be wasted work.
   */
  registerFullBlocks(seq: SequenceBlocks, tokensOf: () => readonly number[]): void {
    const numFull = Math.floor(seq.numCachedTokens / this.blockSize);
    if (numFull <= seq.numRegisteredBlocks) return;
    const tokens = tokensOf();
    for (let i = seq.numRegisteredBlocks; i < numFull; i++) {
      const hash = this.hashAt(seq, tokens, i);
      const block = seq.blockIds[i];
      // Another sequence may have computed the same prefix first: keep its block as the entry.
      if (!this.blockOfHash.has(hash) && this.hashOfBlock[block] === null) {
        this.blockOfHash.set(hash, block);
        this.hashOfBlock[block] = hash;
      }
    }
    seq.numRegisteredBlocks = numFull;
  }

  private take(block: number): void {
    if (this.refCounts[block]++ === 0) this.free.delete(block);
  }

  private forgetHash(block: number): void {
    const hash = this.hashOfBlock[block];
    if (hash === null) return;
    if (this.blockOfHash.get(hash) === block) this.blockOfHash.delete(hash);
    this.hashOfBlock[block] = null;
  }

  private hashAt(seq: SequenceBlocks, tokens: readonly number[], index: number): string {
    for (let i = seq.hashes.length; i <= index; i++) {
      const hash = createHash('sha256').update(i === 0 ? '' : seq.hashes[i - 1]);
      hash.update(Int32Array.from(tokens.slice(i * this.blockSize, (i + 1) * this.blockSize)));
      seq.hashes.push(hash.digest('base64'));
    }
    return seq.hashes[index];
  }
}
