// The engine's thread. ONNX Runtime's run() blocks the thread it is called on, so the model
// lives here and the main thread stays free for HTTP. Between model steps the event loop
// turns, so new requests and cancellations are taken in at every step boundary.
import { parentPort, workerData } from 'node:worker_threads';
import { compileModel } from '../../models/compile.ts';
import { TextTokenizer } from '../tokenizer/tokenizer.ts';
import { IncrementalDetokenizer } from './detokenizer.ts';
import { Engine } from './engine.ts';
import { BlockManager } from './block-manager.ts';
import { DEFAULT_KV_CACHE, planKvCache } from './kv-cache-plan.ts';
import { kvCacheShape } from '../../runtime/attention/kv-cache-shape.ts';
import { ModelRunner } from '../../runtime/model-runner.ts';
import { DEFAULT_SCHEDULER_LIMITS, Scheduler } from './scheduler.ts';
import { openModelSessions } from '../../runtime/model-sessions.ts';
import type { EngineOptions, FromWorker, ModelInfo, SubmitRequest, ToWorker } from './protocol.ts';
import { validateSamplingParams } from './sampler.ts';
import { Sequence } from './sequence.ts';

const port = parentPort;
if (!port) throw new Error('engine worker must run in a worker thread');
const post = (message: FromWorker): void => port.postMessage(message);

async function load(options: EngineOptions): Promise<{ engine: Engine; tokenizer: TextTokenizer; info: ModelInfo }> {
  const started = performance.now();
  const compiled = compileModel({
    modelDir: options.modelDir,
    weights: options.weights,
    tensorParallel: options.tensorParallel,
    expertPlacement: options.expertPlacement,
    cacheDir: options.cacheDir,
    onProgress: (done, total) => post({ type: 'progress', stage: 'compile', done, total }),
  });
  const sessions = await openModelSessions(compiled, options.session, (done, total) => post({ type: 'progress', stage: 'load', done, total }));
  const tokenizer = TextTokenizer.load(options.modelDir);
  const spec = compiled.manifest.spec;
  const contextLen = Math.min(options.maxModelLen ?? spec.maxPositions, spec.maxPositions);
  const shape = kvCacheShape(spec);
  const limits = options.scheduler ?? DEFAULT_SCHEDULER_LIMITS;
  const kvCache = planKvCache(shape, options.kvCache ?? DEFAULT_KV_CACHE, limits.maxNumSeqs, contextLen);
  // A sequence must fit in the pool on its own, or preempting everything else would not help.
  const maxModelLen = Math.min(contextLen, kvCache.numTokens);
  const scheduler = new Scheduler(new BlockManager(kvCache.numBlocks, kvCache.blockSize), limits);
  const info: ModelInfo = {
    spec,
    maxModelLen,
    kvCache,
    scheduler: limits,
    compiledDir: compiled.dir,
    reusedCompile: compiled.reused,
    loadMs: performance.now() - started,
  };
  return { engine: new Engine(new ModelRunner(sessions, kvCache), scheduler), tokenizer, info };
}

function createSequence(id: string, request: SubmitRequest, tokenizer: TextTokenizer, info: ModelInfo): Sequence {
  const prompt = typeof request.prompt === 'string' ? tokenizer.encode(request.prompt) : request.prompt;
  const { vocabSize } = info.spec;
  if (prompt.length === 0) throw new RangeError('the prompt is empty');
  // Checked here, not in a step: a bad length failing mid-step would fail every running request.
  if (!Number.isSafeInteger(request.maxTokens) || request.maxTokens < 1) {
    throw new RangeError(`maxTokens must be an integer of at least 1, got ${request.maxTokens}`);
  }
  validateSamplingParams(request.sampling, vocabSize);
  const bad = prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= vocabSize);
  if (bad !== undefined) throw new RangeError(`prompt token id ${bad} is outside the vocabulary (0..${vocabSize - 1})`);
  if (prompt.length >= info.maxModelLen) {
    throw new RangeError(`the prompt has ${prompt.length} tokens; the context holds ${info.maxModelLen} including at least one generated token`);
  }
  const maxTokens = Math.min(request.maxTokens, info.maxModelLen - prompt.length);
  const params = { ...request, maxTokens };
  return new Sequence(id, prompt, params, new IncrementalDetokenizer(tokenizer, prompt));
}

async function serve(options: EngineOptions): Promise<void> {
  const { engine, tokenizer, info } = await load(options);
  engine.onStep = (report) => post({ type: 'step', report });
  let looping = false;
  const loop = async (): Promise<void> => {
    if (looping) return;
    looping = true;
    try {
      while (engine.hasWork) {
        try {
          const events = await engine.step();
          post({ type: 'events', events, stats: engine.stats() });
        } catch (err) {
          console.error('engine step failed:', err);
          const events = engine.failAll('internal error while generating');
          post({ type: 'events', events, stats: engine.stats() });
        }
        // Let queued messages (new requests, cancels) in before the next step.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      looping = false;
    }
  };
  port!.on('message', (message: ToWorker) => {
    if (message.type === 'submit') {
      try {
        const seq = createSequence(message.id, message.request, tokenizer, info);
        engine.add(seq);
        post({ type: 'accepted', id: message.id, promptTokens: seq.promptTokens.length });
        void loop();
      } catch (err) {
        post({ type: 'rejected', id: message.id, message: err instanceof Error ? err.message : String(err) });
      }
    } else if (message.type === 'cancel') {
      if (engine.cancel(message.id)) void loop();
    } else if (message.type === 'shutdown') {
      process.exit(0);
    }
  });
  post({ type: 'ready', info });
}

serve(workerData as EngineOptions).catch((err: unknown) => {
  post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
});
