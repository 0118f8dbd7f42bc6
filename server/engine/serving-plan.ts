// What every engine loader sizes the same way from the engine options, whatever runs the
// model: the context length, the KV cache pool, and the scheduler over that pool.
import type { ModelSpec } from '../../models/spec.ts';
import { kvCacheShape } from '../../runtime/attention/kv-cache-shape.ts';
import { DEFAULT_KV_CACHE, DEFAULT_SCHEDULER_LIMITS, type EngineOptions, type KvCachePlan, type SchedulerLimits } from './api.ts';
import { BlockManager } from './block-manager.ts';
import { planKvCache } from './kv-cache-plan.ts';
import { Scheduler } from './scheduler.ts';

export interface ServingPlan {
  limits: SchedulerLimits;
  kvCache: KvCachePlan;
  maxModelLen: number;
  scheduler: Scheduler;
}

export function planServing(spec: ModelSpec, options: EngineOptions): ServingPlan {
  const contextLen = Math.min(options.maxModelLen ?? spec.maxPositions, spec.maxPositions);
  const limits = options.scheduler ?? DEFAULT_SCHEDULER_LIMITS;
  const kvCache = planKvCache(kvCacheShape(spec), options.kvCache ?? DEFAULT_KV_CACHE, limits.maxNumSeqs, contextLen);
  // A sequence must fit in the pool on its own, or preempting everything else would not help.
  const maxModelLen = Math.min(contextLen, kvCache.numTokens);
  const scheduler = new Scheduler(new BlockManager(kvCache.numBlocks, kvCache.blockSize), limits);
  return { limits, kvCache, maxModelLen, scheduler };
}
