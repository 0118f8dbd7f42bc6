// The engine's thread: transport only. ONNX Runtime's run() blocks the thread it is called
// on, so the model lives here and the main thread stays free for HTTP. Between model steps
// the event loop turns, so new requests and cancellations are taken in at every step
// boundary. Each step's outputs and stats go to the main thread as one message.
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Admission } from './admission.ts';
import type { EngineOptions } from './api.ts';
import type { Engine } from './engine.ts';
import { loadEngine } from './load-engine.ts';
import { GrammarService } from './grammar/grammar-service.ts';
import type { FromWorker, StepOutput, ToWorker } from './protocol.ts';
import { promptLogprobsBuffers } from './prompt-scoring.ts';
import { reportBuffers } from './step-report.ts';

const port = parentPort;
if (!port) throw new Error('engine worker must run in a worker thread');

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

function postStep(engine: Engine, output: StepOutput): void {
  // The routing arrays and prompt scores are the step's own: moved to the main thread, not copied.
  const scores = output.events.flatMap(({ event }) => (event.type === 'prompt_logprobs' ? promptLogprobsBuffers(event.scores) : []));
  post({ type: 'step', ...output, stats: engine.stats() }, [...reportBuffers(output.report), ...scores]);
}

/** Steps while there is work; one loop at a time. */
function engineLoop(engine: Engine): () => void {
  let looping = false;
  const loop = async (): Promise<void> => {
    if (looping) return;
    looping = true;
    try {
      while (engine.hasWork) {
        try {
          postStep(engine, await engine.step());
        } catch (err) {
          console.error('engine step failed:', err);
          postStep(engine, { events: engine.failAll('internal error while generating'), report: null });
        }
        // Let queued messages (new requests, cancels) in before the next step.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      looping = false;
    }
  };
  return () => void loop();
}

async function serve(options: EngineOptions): Promise<void> {
  const { engine, tokenizer, info } = await loadEngine(options, (stage, done, total) => post({ type: 'progress', stage, done, total }));
  const grammars = new GrammarService({
    tokenizerJsonPath: join(options.modelDir, 'tokenizer.json'),
    logitsSize: info.spec.vocabSize,
    stopTokenIds: info.spec.eosTokenIds,
    textSpecialTokens: options.textSpecialTokens ?? [],
  });
  const limits = { vocabSize: info.spec.vocabSize, maxModelLen: info.maxModelLen };
  const admission = new Admission({ engine, tokenizer, limits, grammars, post, wake: engineLoop(engine) });
  port!.on('message', (message: ToWorker) => {
    if (message.type === 'submit') {
      admission.submit(message.id, message.request);
    } else if (message.type === 'cancel') {
      admission.cancel(message.id);
    } else if (message.type === 'shutdown') {
      process.exit(0);
    }
  });
  post({ type: 'ready', info });
}

serve(workerData as EngineOptions).catch((err: unknown) => {
  post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
});
