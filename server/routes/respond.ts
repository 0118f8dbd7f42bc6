// The shared tail of /v1/chat/completions and /v1/completions: admit, generate, and answer
// with one JSON body or an SSE stream. The client's connection closing aborts generation.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Generation } from '../openai/generation.ts';
import type { PreparedRequest } from '../openai/requests.ts';
import { disconnectSignal, streamSse } from '../openai/sse.ts';
import type { ServedModel } from '../served-model.ts';
import type { ServerContext } from './context.ts';

export async function respond(
  ctx: ServerContext,
  model: ServedModel,
  prepared: PreparedRequest,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<object | undefined> {
  const log = (message: string): void => request.log.error(message);
  const signal = disconnectSignal(reply.raw);
  const generation = await Generation.start({
    engine: model.engine,
    gate: ctx.gate,
    requests: prepared.requests,
    n: prepared.n,
    signal,
    log,
  });
  const user = (request.body as { user?: unknown } | undefined)?.user;
  if (prepared.stream) {
    // From here on the response is ours to write; errors become SSE error events.
    reply.hijack();
    await streamSse(reply.raw, generation, prepared, log);
    request.log.info({ usage: generation.usage, user, cancelled: generation.cancelled }, 'stream finished');
    return undefined;
  }
  for await (const update of generation.updates()) void update;
  request.log.info({ usage: generation.usage, user, cancelled: generation.cancelled }, 'generation finished');
  return prepared.format.response(generation);
}
