// POST /v1/chat/completions
import type { FastifyInstance } from 'fastify';
import { prepareChat } from '../openai/requests.ts';
import { ChatCompletionRequest } from '../schemas/chat.ts';
import type { ServerContext } from './context.ts';
import { respond } from './respond.ts';

export function chatRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: ChatCompletionRequest }>('/v1/chat/completions', { schema: { body: ChatCompletionRequest } }, async (request, reply) => {
    const model = ctx.slot.get();
    return respond(ctx, model, prepareChat(request.body, model), request, reply);
  });
}
