// Requests into the engine, in the worker: each is checked and made a sequence at once. A
// constrained one first has its grammar compiled in the grammar worker (up to seconds for
// some schemas) and joins the batch only then: a grammar that cannot be compiled is refused
// before anything runs, and the model's steps never wait for a compile.
import type { GenerationEvent, GenerationRequest, OutputConstraint } from './api.ts';
import type { Engine } from './engine.ts';
import type { GrammarService } from './grammar/grammar-service.ts';
import { GrammarCompileError } from './grammar/grammar-spec.ts';
import type { FromWorker } from './protocol.ts';
import { createSequence, type RequestLimits } from './request-checks.ts';
import type { Sequence } from './sequence.ts';
import type { TextTokenizer } from '../tokenizer/tokenizer.ts';

type ErrorEvent = Extract<GenerationEvent, { type: 'error' }>;

export interface AdmissionContext {
  engine: Engine;
  tokenizer: TextTokenizer;
  limits: RequestLimits;
  grammars: GrammarService;
  post(message: FromWorker): void;
  /** Starts the engine loop if it is idle. */
  wake(): void;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function grammarFailure(err: unknown, constraint: OutputConstraint): ErrorEvent {
  if (err instanceof GrammarCompileError) return { type: 'error', kind: 'invalid_request', message: err.message, param: constraint.param };
  return { type: 'error', kind: 'internal', message: messageOf(err) };
}

export class Admission {
  /** Constrained requests whose grammar is compiling; true once cancelled meanwhile. */
  private readonly compiling = new Map<string, boolean>();

  constructor(private readonly ctx: AdmissionContext) {}

  submit(id: string, request: GenerationRequest): void {
    let seq: Sequence;
    try {
      seq = createSequence(id, request, this.ctx.tokenizer, this.ctx.limits);
    } catch (err) {
      this.answer(id, { type: 'error', kind: 'invalid_request', message: messageOf(err) });
      return;
    }
    const constraint = request.grammar ?? null;
    if (constraint === null) return this.start(seq);
    this.compiling.set(id, false);
    this.ctx.grammars.open(id, constraint.spec).then(
      (grammar) => {
        const cancelled = this.compiling.get(id) === true;
        this.compiling.delete(id);
        seq.grammar = grammar;
        this.start(seq);
        if (cancelled) this.cancel(id);
      },
      (err: unknown) => {
        this.compiling.delete(id);
        this.answer(id, grammarFailure(err, constraint));
      },
    );
  }

  /** A cancel before the grammar compiled takes effect once the sequence has joined. */
  cancel(id: string): void {
    if (this.compiling.has(id)) this.compiling.set(id, true);
    else if (this.ctx.engine.cancel(id)) this.ctx.wake();
  }

  private start(seq: Sequence): void {
    this.ctx.engine.add(seq);
    this.answer(seq.id, { type: 'accepted', promptTokens: seq.promptTokens.length });
    this.ctx.wake();
  }

  private answer(id: string, event: GenerationEvent): void {
    this.ctx.post({ type: 'submitted', id, event });
  }
}
