// GET /health: 200 once the model is ready and the engine runs; 503 (with Retry-After) before.
// The body also reports the engine's queues and KV cache as of its last step: cheap to read,
// and what a load balancer or the load benchmark wants to see.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.ts';

const Count = Type.Integer({ minimum: 0 });
const Healthy = Type.Object({
  status: Type.Literal('ok'),
  model: Type.String(),
  /** 'cpu' or 'cuda:N': where the model runs. */
  device: Type.String(),
  engine: Type.Object({
    running: Count,
    waiting: Count,
    preemptions: Count,
    kv_cache: Type.Object({ used_blocks: Count, total_blocks: Count, block_size: Count, usage: Type.Number() }),
    prefix_cache: Type.Object({ query_tokens: Count, hit_tokens: Count }),
  }),
});

export function healthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/health', { schema: { response: { 200: Healthy } } }, async () => {
    // Throws the 503 ApiError (loading, failed or engine stopped) the error handler answers with.
    const model = ctx.slot.get();
    const stats = model.engine.stats;
    return {
      status: 'ok' as const,
      model: model.id,
      device: model.execution.device,
      engine: {
        running: stats.numRunning,
        waiting: stats.numWaiting,
        preemptions: stats.numPreemptions,
        kv_cache: {
          used_blocks: stats.kvBlocksUsed,
          total_blocks: stats.kvBlocksTotal,
          block_size: stats.kvBlockSize,
          usage: stats.kvBlocksUsed / stats.kvBlocksTotal,
        },
        prefix_cache: { query_tokens: stats.prefixCacheQueryTokens, hit_tokens: stats.prefixCacheHitTokens },
      },
    };
  });
}
