// Between the engine worker and the grammar worker (grammar-worker.ts), which owns xgrammar:
// its compiler, compiled grammars and one matcher per constrained sequence. Opening and
// closing travel as messages; the per-token path does not wait on any: each sequence has a
// shared mask slot, the engine marks it pending and posts the sampled token, and the grammar
// worker writes the next mask into the slot and marks it ready while the engine runs the
// next model step.
import type { GrammarSpec, GrammarSpecType } from './grammar-spec.ts';

export interface GrammarWorkerInit {
  /** The model's tokenizer.json, read in the grammar worker (vocabularies are large). */
  tokenizerJsonPath: string;
  /** Width of the model's logits rows. */
  logitsSize: number;
  /** Tokens that end a sequence: a grammar allows them exactly where it can end. */
  stopTokenIds: number[];
  /** Special added tokens a grammar may emit as text (a tool-call parser's markup). */
  textSpecialTokens: string[];
}

export type ToGrammarWorker =
  /** Compile (or take from the cache), make the sequence's matcher, fill the first mask. */
  | { type: 'open'; seqId: string; spec: GrammarSpec; slot: SharedArrayBuffer }
  /** Per sequence: accept the sampled token, then fill the next mask into its slot. */
  | { type: 'advance'; items: Array<[seqId: string, token: number]> }
  | { type: 'close'; seqId: string };

export type FromGrammarWorker =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'opened'; seqId: string }
  | { type: 'open-failed'; seqId: string; specType: GrammarSpecType; reason: string; compileError: boolean };

/** Slot states (word 0 of a slot). */
export const SLOT_PENDING = 0;
export const SLOT_READY = 1;
/** The grammar refused the sampled token or failed: the sequence must end. */
export const SLOT_FAILED = 2;

/** Words before the mask: the state and a spare. */
const HEADER_WORDS = 2;

export function maskWords(logitsSize: number): number {
  return Math.ceil(logitsSize / 32);
}

export function createMaskSlot(logitsSize: number): SharedArrayBuffer {
  return new SharedArrayBuffer((HEADER_WORDS + maskWords(logitsSize)) * 4);
}

/** The slot's state word (Atomics only) and its mask words. */
export function slotViews(slot: SharedArrayBuffer): { state: Int32Array; mask: Int32Array } {
  return { state: new Int32Array(slot, 0, 1), mask: new Int32Array(slot, HEADER_WORDS * 4) };
}
