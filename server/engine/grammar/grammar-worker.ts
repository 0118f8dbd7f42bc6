// The grammar worker: xgrammar's thread. It owns the GrammarEngine (vocabulary, compiler,
// compile cache) and every constrained sequence's matcher, so that compiling a grammar (up
// to seconds for a large schema) and computing masks never block the engine's model steps.
// Masks go out through each sequence's shared slot (grammar-protocol.ts).
import { readFileSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { GrammarEngine } from './grammar-engine.ts';
import type { FromGrammarWorker, GrammarWorkerInit, ToGrammarWorker } from './grammar-protocol.ts';
import { SLOT_FAILED, SLOT_READY, slotViews } from './grammar-protocol.ts';
import { GrammarCompileError } from './grammar-spec.ts';
import { grammarVocabularyFromTokenizerJson } from './grammar-vocabulary.ts';
import type { SequenceGrammar } from './sequence-grammar.ts';

const port = parentPort;
if (!port) throw new Error('the grammar worker must run in a worker thread');

interface OpenSequence {
  grammar: SequenceGrammar;
  state: Int32Array;
  mask: Int32Array;
}

function post(message: FromGrammarWorker): void {
  port!.postMessage(message);
}

function settle(seq: OpenSequence, state: number): void {
  Atomics.store(seq.state, 0, state);
  Atomics.notify(seq.state, 0);
}

async function fillSlot(seq: OpenSequence): Promise<void> {
  seq.mask.set(await seq.grammar.fillNextTokenMask());
  settle(seq, SLOT_READY);
}

class GrammarWorker {
  /** The engine closes a sequence only after its open was answered. */
  private readonly open = new Map<string, OpenSequence>();

  constructor(private readonly engine: GrammarEngine) {}

  handle(message: ToGrammarWorker): void {
    if (message.type === 'open') void this.openSequence(message.seqId, message);
    else if (message.type === 'advance') void this.advance(message.items);
    else this.close(message.seqId);
  }

  private async openSequence(seqId: string, { spec, slot }: Extract<ToGrammarWorker, { type: 'open' }>): Promise<void> {
    try {
      const grammar = await this.engine.createSequenceGrammar(spec);
      const seq = { grammar, ...slotViews(slot) };
      try {
        await fillSlot(seq);
      } catch (err) {
        grammar.dispose();
        throw err;
      }
      this.open.set(seqId, seq);
      post({ type: 'opened', seqId });
    } catch (err) {
      const compileError = err instanceof GrammarCompileError;
      const reason = compileError ? err.reason : err instanceof Error ? err.message : String(err);
      post({ type: 'open-failed', seqId, specType: spec.type, reason, compileError });
    }
  }

  private async advance(items: Array<[string, number]>): Promise<void> {
    for (const [seqId, token] of items) {
      const seq = this.open.get(seqId);
      if (seq === undefined) continue; // closed since
      try {
        if (!seq.grammar.acceptToken(token)) settle(seq, SLOT_FAILED);
        else await fillSlot(seq);
      } catch (err) {
        console.error(`grammar worker: sequence ${seqId} failed:`, err);
        settle(seq, SLOT_FAILED);
      }
    }
  }

  private close(seqId: string): void {
    this.open.get(seqId)?.grammar.dispose();
    this.open.delete(seqId);
  }
}

/** How much lower than the rest of the process the grammar thread runs (niceness steps; 19 is the lowest). */
const GRAMMAR_THREAD_NICE_STEPS = 10;

/**
 * Compiling a grammar is CPU work (up to seconds) that the model's steps must not wait for,
 * and on a machine with no idle core they would, for the CPU. So this thread alone runs at a
 * lower priority and takes the CPU time the model leaves (Linux: /proc/thread-self names the
 * thread, and setpriority on a thread id applies to that thread). Relative to the process's
 * own niceness, so that a server started under `nice` still ranks the model first. Elsewhere,
 * or if refused, it runs at the process's priority.
 */
function lowerThreadPriority(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + GRAMMAR_THREAD_NICE_STEPS));
  } catch {
    // not Linux, or not permitted: normal priority
  }
}

async function start(init: GrammarWorkerInit): Promise<void> {
  lowerThreadPriority();
  const tokenizerJson = JSON.parse(readFileSync(init.tokenizerJsonPath, 'utf8')) as Record<string, unknown>;
  const vocabulary = grammarVocabularyFromTokenizerJson(tokenizerJson, { textSpecialTokens: init.textSpecialTokens });
  const engine = await GrammarEngine.create({ vocabulary, logitsSize: init.logitsSize, stopTokenIds: init.stopTokenIds });
  const worker = new GrammarWorker(engine);
  port!.on('message', (message: ToGrammarWorker) => worker.handle(message));
  post({ type: 'ready' });
}

start(workerData as GrammarWorkerInit).catch((err: unknown) => {
  post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
});
