// POST /v1/completions
import type { FastifyInstance } from 'fastify';
import { prepareCompletion } from '../openai/requests.ts';
import { CompletionRequest } from '../schemas/completions.ts';
import type { ServerContext } from './context.ts';
import { respond } from './respond.ts';

export function completionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: CompletionRequest }>('/v1/completions', { schema: { body: CompletionRequest } }, async (request, reply) => {
    const model = ctx.slot.get();
    return respond(ctx, model, prepareCompletion(request.body, model), request, reply);
  });
}
