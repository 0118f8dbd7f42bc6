// Builds the engine in its worker: compiles the checkpoint (or reuses the compiled graphs),
// opens the sessions, sizes the KV cache and the scheduler.
import { compileModel } from '../../models/compile.ts';
import { ModelRunner } from '../../runtime/model-runner.ts';
import { openModelSessions } from '../../runtime/model-sessions.ts';
import { TextTokenizer } from '../tokenizer/tokenizer.ts';
import type { EngineOptions, ModelInfo } from './api.ts';
import { Engine } from './engine.ts';
import { loadFusedEngine, perExpertExecution, usesFusedPlan } from './load-fused-engine.ts';
import { planServing } from './serving-plan.ts';

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
  const { limits, kvCache, maxModelLen, scheduler } = planServing(compiled.manifest.spec, options);
  const info: ModelInfo = {
    spec: compiled.manifest.spec,
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
