// GET /health: 200 once the model is ready and the engine runs; 503 (with Retry-After) before.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.ts';

const Healthy = Type.Object({ status: Type.Literal('ok'), model: Type.String() });

export function healthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/health', { schema: { response: { 200: Healthy } } }, async () => {
    // Throws the 503 ApiError (loading, failed or engine stopped) the error handler answers with.
    const model = ctx.slot.get();
    return { status: 'ok', model: model.id };
  });
}
