// A stand-in for the engine behind the engine's API (server/engine/api.ts): HTTP-level tests
// (validation, statuses, shaping, transports) run through buildApp and app.inject against it
// with the tiny checkpoint's real tokenizer and chat template, but nothing is compiled and no
// worker starts. It records every request it is handed, so a test can assert what a body
// turned into. Tests of what the model computes use the real engine (helpers.ts).
import { loadModelSpec } from '../../models/registry.ts';
import type {
  Engine,
  EngineStats,
  GenerationEvent,
  GenerationObserver,
  GenerationRequest,
  ModelInfo,
  PromptLogprobs,
  PromptLogprobsOptions,
  StepObserver,
} from '../../server/engine/api.ts';
import { emptyPromptLogprobs } from '../../server/engine/prompt-scoring.ts';
import { serveModel, type ServedModel } from '../../server/served-model.ts';
import { writeTinyModel, type TinyModel } from './tiny-model.ts';

/** How long the stand-in takes per token: long enough for a test to act mid-stream. */
const TOKEN_MS = 1;

export class StandInEngine implements Engine {
  readonly requests: GenerationRequest[] = [];
  private running = true;
  private readonly observers = new Set<GenerationObserver>();
  private readonly stopped = new Set<(message: string) => void>();
  private inFlight = 0;
  private nextId = 0;

  constructor(readonly info: ModelInfo) {}

  get isRunning(): boolean {
    return this.running;
  }

  get numInFlight(): number {
    return this.inFlight;
  }

  get stats(): EngineStats {
    const { numBlocks, blockSize } = this.info.kvCache;
    return {
      numRunning: this.inFlight,
      numWaiting: 0,
      kvBlocksUsed: 0,
      kvBlocksTotal: numBlocks,
      kvBlockSize: blockSize,
      numPreemptions: 0,
      prefixCacheQueryTokens: 0,
      prefixCacheHitTokens: 0,
    };
  }

  observe(observer: GenerationObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  observeSteps(_observer: StepObserver): () => void {
    return () => {};
  }

  /**
   * Token i of a sequence is (prompt length + i) mod vocab, so outputs are predictable; it
   * stops at a stop token like the real engine, and at maxTokens. Text is the token's id in
   * brackets, which no stop string of a test matches by accident.
   */
  async *generate(request: GenerationRequest, signal?: AbortSignal): AsyncGenerator<GenerationEvent> {
    const id = `stand-in-${this.nextId++}`;
    this.requests.push(request);
    const emit = (event: GenerationEvent): GenerationEvent => {
      for (const observer of this.observers) observer(id, event);
      return event;
    };
    if (!this.running) {
      yield emit({ type: 'error', kind: 'internal', message: 'the stand-in engine has stopped' });
      return;
    }
    const prompt = typeof request.prompt === 'string' ? [...request.prompt].map((c) => c.charCodeAt(0)) : request.prompt;
    this.inFlight++;
    let crashed: string | null = null;
    const onStop = (message: string): void => void (crashed = message);
    this.stopped.add(onStop);
    try {
      yield emit({ type: 'accepted', promptTokens: prompt.length });
      const vocab = this.info.spec.vocabSize;
      if (request.promptLogprobs != null)
        yield emit({ type: 'prompt_logprobs', scores: standInScores(prompt, request.promptLogprobs, vocab) });
      let finishReason: 'stop' | 'length' | 'abort' = 'length';
      let numTokens = 0;
      // As the engine does: no further than the context leaves.
      const maxTokens = Math.min(request.maxTokens, this.info.maxModelLen - prompt.length);
      while (numTokens < maxTokens) {
        await new Promise((resolve) => setTimeout(resolve, TOKEN_MS));
        if (crashed !== null) {
          yield emit({ type: 'error', kind: 'internal', message: crashed });
          return;
        }
        if (signal?.aborted) {
          finishReason = 'abort';
          break;
        }
        const token = (prompt.length + numTokens) % vocab;
        numTokens++;
        const stop = !request.ignoreEos && request.stopTokenIds.includes(token);
        const logprob = request.topLogprobs === null ? null : { token, logprob: -1, top: [] };
        yield emit({ type: 'token', token, text: stop ? '' : `[${token}]`, logprob });
        if (stop) {
          finishReason = 'stop';
          break;
        }
      }
      yield emit({
        type: 'finished',
        finishReason,
        text: '',
        promptTokens: prompt.length,
        cachedTokens: 0,
        completionTokens: numTokens,
        prefillMs: 0,
        decodeMs: 0,
        queueMs: 0,
      });
    } finally {
      this.inFlight--;
      this.stopped.delete(onStop);
    }
  }

  /** As a crashed engine: every request in flight ends with an internal error, later ones fail at once. */
  crash(message = 'the stand-in engine crashed'): void {
    this.running = false;
    for (const stop of this.stopped) stop(message);
  }

  async close(): Promise<void> {
    this.crash('the stand-in engine was closed');
  }
}

/**
 * Made-up scores of prompt positions from.. (exact in float32): position p's token has logprob
 * -p/4 and rank p % 3 + 1; its alternatives are tokens p + j (mod vocab) with logprob -(j + 1)/8.
 */
export function standInScores(prompt: readonly number[], options: PromptLogprobsOptions, vocab: number): PromptLogprobs {
  const start = options.from ?? 1;
  const count = Math.max(0, prompt.length - start);
  const scores = emptyPromptLogprobs(start, count, options.topK);
  for (let i = 0; i < count; i++) {
    const p = start + i;
    scores.tokens[i] = prompt[p];
    scores.logprobs[i] = -p / 4;
    scores.ranks[i] = (p % 3) + 1;
    for (let j = 0; j < options.topK; j++) {
      scores.topIds[i * options.topK + j] = (p + j) % vocab;
      scores.topLogprobs[i * options.topK + j] = -(j + 1) / 8;
    }
    scores.tailLogprobs[i] = -3;
  }
  return scores;
}

export interface StandInModel {
  tiny: TinyModel;
  engine: StandInEngine;
  model: ServedModel;
  remove(): void;
}

/** The tiny checkpoint's tokenizer, template and spec, served by a stand-in engine. */
export function standInModel(servedModelName = 'tiny-moe', maxModelLen = 512): StandInModel {
  const tiny = writeTinyModel();
  const { spec } = loadModelSpec(tiny.dir);
  const blockSize = 16;
  const numBlocks = Math.ceil(maxModelLen / blockSize) * 4;
  const engine = new StandInEngine({
    spec,
    maxModelLen,
    kvCache: { numBlocks, blockSize, numTokens: numBlocks * blockSize, bytesPerToken: 0 },
    scheduler: { maxNumSeqs: 64, maxBatchTokens: 256 },
    compiledDir: tiny.dir,
    reusedCompile: false,
    loadMs: 0,
    execution: {
      device: 'cpu',
      plan: 'per-expert',
      precision: 'stand-in (no model)',
      notes: [],
      graphCallsPerDecodeStep: { device: 0, cpu: 0 },
    },
  });
  return { tiny, engine, model: serveModel(engine, tiny.dir, servedModelName), remove: () => tiny.remove() };
}
