// Builds the engine in its worker: compiles the checkpoint (or reuses the compiled graphs),
// opens the sessions, sizes the KV cache and the scheduler.
import { compileModel } from '../../models/compile.ts';
import { kvCacheShape } from '../../runtime/attention/kv-cache-shape.ts';
import { ModelRunner } from '../../runtime/model-runner.ts';
import { openModelSessions } from '../../runtime/model-sessions.ts';
import { TextTokenizer } from '../tokenizer/tokenizer.ts';
import { DEFAULT_KV_CACHE, DEFAULT_SCHEDULER_LIMITS, type EngineOptions, type ModelInfo } from './api.ts';
import { BlockManager } from './block-manager.ts';
import { Engine } from './engine.ts';
import { planKvCache } from './kv-cache-plan.ts';
import { loadFusedEngine, perExpertExecution, usesFusedPlan } from './load-fused-engine.ts';
import { Scheduler } from './scheduler.ts';

export interface LoadedEngine {
  engine: Engine;
  tokenizer: TextTokenizer;
  info: ModelInfo;
}

export type LoadProgress = (stage: 'compile' | 'load', done: number, total: number) => void;

export async function loadEngine(options: EngineOptions, onProgress: LoadProgress): Promise<LoadedEngine> {
  if (usesFusedPlan(options)) return loadFusedEngine(options, onProgress);
  const started = performance.now();
  const compiled = compileModel({
    modelDir: options.modelDir,
    weights: options.weights,
    tensorParallel: options.tensorParallel,
    expertPlacement: options.expertPlacement,
    int4BlockSize: options.int4BlockSize,
    cacheDir: options.cacheDir,
    onProgress: (done, total) => onProgress('compile', done, total),
  });
  const rssBeforeSessions = process.memoryUsage.rss();
  const sessions = await openModelSessions(compiled, options.session, (done, total) => onProgress('load', done, total));
  const sessionsBytes = process.memoryUsage.rss() - rssBeforeSessions;
  const tokenizer = TextTokenizer.load(options.modelDir, options.textSpecialTokens);
  const spec = compiled.manifest.spec;
  const contextLen = Math.min(options.maxModelLen ?? spec.maxPositions, spec.maxPositions);
  const limits = options.scheduler ?? DEFAULT_SCHEDULER_LIMITS;
  const kvCache = planKvCache(kvCacheShape(spec), options.kvCache ?? DEFAULT_KV_CACHE, limits.maxNumSeqs, contextLen);
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
    execution: perExpertExecution(compiled.manifest, options),
    memory: { rssBeforeSessionsBytes: rssBeforeSessions, sessionsBytes, kvCacheBytes: kvCache.numTokens * kvCache.bytesPerToken },
  };
  return { engine: new Engine(new ModelRunner(sessions, kvCache), scheduler), tokenizer, info };
}
