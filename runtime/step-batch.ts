// A model step's batch: each sequence contributes its new tokens (a prefill chunk or one
// decode token). StepSequence is what the caller hands the runner; StepSlot is a sequence's
// place in the step's token matrix, which every stage (attention on every shard included)
// works from.
import type { RoutingResult } from './moe/router.ts';
import type { BlockTable } from './attention/kv-cache.ts';

export interface StepSequence {
  /** New tokens, at positions cache.numCachedTokens onwards. */
  tokens: ArrayLike<number>;
  /** The sequence's blocks in the pool; they must already cover the new tokens. */
  cache: BlockTable;
  /**
   * Which new tokens need logits: none (a prefill chunk), the last (sampling), all (tests), or
   * those from row `fromRow` to the last (scoring a prompt from a position on).
   */
  logits: 'none' | 'last' | 'all' | { fromRow: number };
}

/** A sequence's place in the step: its rows in the token matrix and its cache. */
export interface StepSlot {
  cache: BlockTable;
  /** First row of its new tokens in the step's token matrix. */
  row: number;
  numTokens: number;
  /** Tokens cached before the step. */
  start: number;
}

export interface StepResult {
  /** [rows, vocabSize]: the rows each sequence asked for, in batch order. */
  logits: Float32Array;
  /** Routing of every step token (rows in batch order) for each MoE layer, in layer order; fresh arrays every step. */
  routing: RoutingResult[];
  moeLayers: number[];
  numTokens: number;
}

/** The batch's slots, rows in batch order. */
export function layOutStep(batch: readonly StepSequence[]): StepSlot[] {
  let row = 0;
  return batch.map((seq) => {
    const numTokens = seq.tokens.length;
    if (numTokens === 0) throw new Error('step: a sequence has no new tokens');
    const slot = { cache: seq.cache, row, numTokens, start: seq.cache.numCachedTokens };
    row += numTokens;
    return slot;
  });
}

/** The step's token rows whose logits the batch asks for (StepSequence.logits), in batch order. */
export function logitRowsOf(batch: readonly StepSequence[], slots: readonly StepSlot[]): Int32Array {
  const rows: number[] = [];
  slots.forEach((s, b) => {
    const wanted = batch[b].logits;
    const first = wanted === 'none' ? s.numTokens : wanted === 'last' ? s.numTokens - 1 : wanted === 'all' ? 0 : wanted.fromRow;
    for (let i = Math.max(0, first); i < s.numTokens; i++) rows.push(s.row + i);
  });
  return Int32Array.from(rows);
}

/** Blocks a sequence's table must hold for the step: all its cached and new positions. */
export function blocksCovering(s: { start: number; numTokens: number }, blockSize: number): number {
  return Math.ceil((s.start + s.numTokens) / blockSize);
}
