// The model a command was configured with (serve, batch, distill): the checkpoint, or the
// demo checkpoint written on first use, compiled and loaded with progress on stderr.
import type { ServerConfig } from './config.ts';
import { ensureDemoModel } from './demo-model.ts';
import { progressPrinter } from './progress.ts';
import { loadServedModel, type ServedModel } from './served-model.ts';

/** The configured model (or the demo model), compiled and loaded, with progress on stderr. */
export function loadModel(config: ServerConfig): Promise<ServedModel> {
  const cacheDir = config.cacheDir ?? undefined;
  // The demo checkpoint is small: writing it blocks the event loop for about a second.
  const modelDir = config.model ?? ensureDemoModel(progressPrinter('writing demo model'), cacheDir);
  const printers = { compile: progressPrinter('compiling graphs'), load: progressPrinter('loading sessions') };
  return loadServedModel({
    modelDir,
    weights: config.weights,
    device: config.device,
    threads: config.threads,
    attention: config.attention,
    tensorParallel: config.tensorParallel,
    expertPlacement: config.expertPlacement,
    int4BlockSize: config.int4BlockSize,
    cacheDir,
    maxModelLen: config.maxModelLen ?? undefined,
    kvCache: { numTokens: config.kvCacheTokens ?? undefined, memoryMib: config.kvCacheMib, blockSize: config.kvBlockSize },
    scheduler: { maxNumSeqs: config.maxNumSeqs, maxBatchTokens: config.maxBatchTokens, maxStepMs: config.maxStepMs },
    servedModelName: config.servedModelName ?? undefined,
    parsers: { toolCallParser: config.toolCallParser, reasoningParser: config.reasoningParser },
    onProgress: (stage, done, total) => (stage === 'compile' ? printers.compile : printers.load)(done, total),
  });
}
