// One OpenAI request's generation: its choices run as independent engine sequences, their
// events merged into per-choice updates that every transport (JSON, SSE, WebSocket) formats.
// A request holds one admission slot from the moment it is admitted until the engine has
// ended all its sequences, so a client that went away frees its slot only once its
// sequences are really gone.
import { setMaxListeners } from 'node:events';
import type { Engine, FinishReason, GenerationEvent, GenerationRequest, TokenLogprob } from '../engine/api.ts';
import { AsyncQueue } from '../async-queue.ts';
import { ApiError, internalError, invalidRequest, queueFull, unavailable } from './errors.ts';
import { appendPromptScores, type PromptTokenLogprob } from './prompt-logprobs.ts';

export interface ChoiceUpdate {
  index: number;
  /** Newly released text; may be empty (e.g. the last update of a choice). */
  text: string;
  /** Logprobs of the tokens since the previous update, when requested. */
  logprobs: TokenLogprob[];
  /** Set on a choice's last update. */
  finishReason: FinishReason | null;
  /** On a choice's last update, when requested: see ChoiceState.routedExperts. */
  routedExperts?: RoutedExperts;
  /** True on a choice's first update, which also carries its prompt's scores (when requested). */
  first: boolean;
  /** The choice's scored prompt positions 1.. on its first update (complete by then); otherwise empty. */
  promptLogprobs: PromptTokenLogprob[];
}

/**
 * By position: [MoE layer][k] expert ids of each token the model ran for a choice (the prompt,
 * then each generated token but the last, which is sampled and never fed back); null for a
 * prompt token whose KV came from the prefix cache, so that it was not run for this request.
 */
export type RoutedExperts = Array<number[][] | null>;

export interface ChoiceState {
  index: number;
  text: string;
  logprobs: TokenLogprob[];
  finishReason: FinishReason | null;
  promptTokens: number;
  /** Prompt tokens the prefix cache served (known once the choice has finished). */
  cachedTokens: number;
  completionTokens: number;
  /** Empty unless requested. */
  routedExperts: RoutedExperts;
  /** Scores of prompt positions 1.. (requests with promptLogprobs); empty otherwise. */
  promptLogprobs: PromptTokenLogprob[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** OpenAI's field: of prompt_tokens, those whose KV came from the prefix cache. */
  prompt_tokens_details: { cached_tokens: number };
}

/** Bounds the requests admitted at once (generating or waiting); beyond it: 429. */
export class AdmissionGate {
  private numAdmitted = 0;

  constructor(readonly maxQueue: number) {}

  get size(): number {
    return this.numAdmitted;
  }

  /** Returns the release function (safe to call twice); throws a 429 ApiError when full. */
  admit(): () => void {
    if (this.numAdmitted >= this.maxQueue) throw queueFull(this.maxQueue);
    this.numAdmitted++;
    let released = false;
    return () => {
      if (!released) this.numAdmitted--;
      released = true;
    };
  }
}

type Logger = (message: string) => void;

export interface StartOptions {
  engine: Engine;
  gate: AdmissionGate;
  /** One per choice, prompt-major (see choiceRequests). */
  requests: readonly GenerationRequest[];
  n: number;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** Where engine faults are reported (the client sees a generic 500). */
  log: Logger;
}

interface ChoiceEvent {
  index: number;
  event: GenerationEvent;
}

export class Generation {
  readonly choices: ChoiceState[];
  /** Every choice's engine events, in arrival order; ends once every choice's stream has ended. */
  private readonly events = new AsyncQueue<ChoiceEvent>();
  /** Updates from events that arrived before every choice was accepted: yielded first. */
  private readonly early: ChoiceUpdate[] = [];
  private readonly stop = new AbortController();
  /** Per choice: how many of its logprobs have gone out with an update. */
  private readonly numReportedLogprobs = new Map<number, number>();
  /** Choices that have had an update. */
  private readonly updated = new Set<number>();

  private constructor(
    engine: Engine,
    requests: readonly GenerationRequest[],
    /** Choices per prompt: choice index = prompt index * n + j. */
    private readonly n: number,
    signal: AbortSignal,
    private readonly log: Logger,
    release: () => void,
  ) {
    this.choices = requests.map((_, index) => ({
      index,
      text: '',
      logprobs: [],
      finishReason: null,
      promptTokens: 0,
      cachedTokens: 0,
      completionTokens: 0,
      routedExperts: [],
      promptLogprobs: [],
    }));
    // Removed when the generation ends: an offline job's one signal outlives every request it sends.
    const onAbort = (): void => this.stop.abort();
    if (signal.aborted) this.stop.abort();
    else signal.addEventListener('abort', onAbort, { once: true });
    // Every choice's engine.generate() listens to `stop` (up to MAX_CHOICES_PER_REQUEST):
    // more than Node's default of 10 is expected here, not a leak worth a warning.
    setMaxListeners(requests.length + 1, this.stop.signal);
    const pumps = requests.map((request, index) => this.pump(engine, request, index));
    void Promise.allSettled(pumps).then(() => {
      signal.removeEventListener('abort', onAbort);
      this.events.end();
      release();
    });
  }

  /** Admits the request and submits its choices; resolves once the engine accepted all of them. */
  static async start(options: StartOptions): Promise<Generation> {
    const { engine, gate, requests, n, signal, log } = options;
    const generation = new Generation(engine, requests, n, signal, log, gate.admit());
    try {
      await generation.awaitAccepted();
      return generation;
    } catch (err) {
      generation.close();
      throw err;
    }
  }

  /** Stops every choice still generating (client gone, or a choice failed). */
  close(): void {
    this.stop.abort();
  }

  /**
   * Exact counts: each prompt once (not once per choice, as OpenAI counts n > 1), every
   * generated token; cached tokens of the choices whose prompts are counted.
   */
  get usage(): Usage {
    let promptTokens = 0;
    let cachedTokens = 0;
    let completionTokens = 0;
    for (const choice of this.choices) {
      if (choice.index % this.n === 0) {
        promptTokens += choice.promptTokens;
        cachedTokens += choice.cachedTokens;
      }
      completionTokens += choice.completionTokens;
    }
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: cachedTokens },
    };
  }

  /** True when a choice ended because its client went away (or asked to cancel). */
  get cancelled(): boolean {
    return this.choices.some((choice) => choice.finishReason === 'abort');
  }

  /** Updates in arrival order until every choice has finished; throws ApiError if one fails. */
  async *updates(): AsyncGenerator<ChoiceUpdate> {
    try {
      yield* this.early.splice(0);
      for (let next = await this.events.next(); next !== undefined; next = await this.events.next()) {
        const update = this.apply(next);
        if (update !== null) yield update;
      }
    } finally {
      this.close();
    }
  }

  private async awaitAccepted(): Promise<void> {
    let numAccepted = 0;
    while (numAccepted < this.choices.length) {
      const next = await this.events.next();
      if (next === undefined) throw internalError();
      if (next.event.type === 'accepted') {
        this.choices[next.index].promptTokens = next.event.promptTokens;
        numAccepted++;
      } else {
        // An error throws here, before any response is written; anything else is kept for updates().
        const update = this.apply(next);
        if (update !== null) this.early.push(update);
      }
    }
  }

  private apply({ index, event }: ChoiceEvent): ChoiceUpdate | null {
    const choice = this.choices[index];
    if (event.type === 'error') throw engineError(event, this.log);
    if (event.type === 'routed') {
      appendRouting(choice.routedExperts, event);
      return null;
    }
    if (event.type === 'prompt_logprobs') {
      appendPromptScores(choice.promptLogprobs, event.scores);
      return null;
    }
    if (event.type === 'token') {
      if (event.logprob !== null) choice.logprobs.push(event.logprob);
      choice.completionTokens++;
      if (event.text === '') return null;
      choice.text += event.text;
      return { index, text: event.text, logprobs: this.unreported(choice), finishReason: null, ...this.firstOf(choice) };
    }
    if (event.type === 'finished') {
      choice.text += event.text;
      choice.finishReason = event.finishReason;
      choice.completionTokens = event.completionTokens;
      choice.cachedTokens = event.cachedTokens;
      return {
        index,
        text: event.text,
        logprobs: this.unreported(choice),
        finishReason: event.finishReason,
        routedExperts: choice.routedExperts,
        ...this.firstOf(choice),
      };
    }
    return null;
  }

  /** Whether this is the choice's first update; the first carries the prompt's scores. */
  private firstOf(choice: ChoiceState): Pick<ChoiceUpdate, 'first' | 'promptLogprobs'> {
    const first = !this.updated.has(choice.index);
    this.updated.add(choice.index);
    return { first, promptLogprobs: first ? choice.promptLogprobs : [] };
  }

  /** Logprobs of tokens whose text was held back travel with the next text released. */
  private unreported(choice: ChoiceState): TokenLogprob[] {
    const from = this.numReportedLogprobs.get(choice.index) ?? 0;
    this.numReportedLogprobs.set(choice.index, choice.logprobs.length);
    return choice.logprobs.slice(from);
  }

  private async pump(engine: Engine, request: GenerationRequest, index: number): Promise<void> {
    try {
      for await (const event of engine.generate(request, this.stop.signal)) this.events.push({ index, event });
    } catch (err) {
      this.events.push({ index, event: { type: 'error', kind: 'internal', message: err instanceof Error ? err.message : String(err) } });
    }
  }
}

/** Rows land at their positions: a sequence recomputed after preemption overwrites its earlier rows. */
function appendRouting(into: RoutedExperts, event: Extract<GenerationEvent, { type: 'routed' }>): void {
  while (into.length < event.start) into.push(null);
  for (let t = 0; t < event.numTokens; t++) {
    into[event.start + t] = event.expertIds.map((ids) => {
      const topK = ids.length / event.numTokens;
      return Array.from(ids.subarray(t * topK, (t + 1) * topK));
    });
  }
}

/**
 * The engine's own words for a bad request; a 503 the client may retry elsewhere when the
 * server cancelled it to shut down; a generic 500 (details logged) for its faults.
 */
function engineError(event: Extract<GenerationEvent, { type: 'error' }>, log: Logger): ApiError {
  if (event.kind === 'invalid_request')
    return event.param === undefined
      ? invalidRequest(event.message)
      : invalidRequest(`Invalid '${event.param}': ${event.message}`, event.param);
  if (event.kind === 'shutdown') return unavailable('The server is shutting down and cancelled this request; retry it.', 'shutting_down');
  log(event.message);
  return internalError();
}
