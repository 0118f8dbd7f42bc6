// GET /v1/ws: token streaming over a WebSocket, in the style of OpenAI's Realtime API. One
// connection runs many requests at once, each tagged with the client's id; a request ends
// with exactly one `response.done` or `error` event. Bad messages get an `error` event and
// the socket stays open; closing the socket cancels everything it started.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type {} from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { ApiError, internalError, invalidRequest, unavailable } from '../openai/errors.ts';
import { Generation } from '../openai/generation.ts';
import { prepareChat, prepareCompletion, type PreparedRequest } from '../openai/requests.ts';
import { ChatCompletionRequest } from '../schemas/chat.ts';
import { CompletionRequest } from '../schemas/completions.ts';
import { parseWith } from '../schemas/validation.ts';
import { WsClientMessage, type WsEndpoint } from '../schemas/ws.ts';
import type { ServedModel } from '../served-model.ts';
import type { ServerContext } from './context.ts';

/** Close code for a server going away (RFC 6455). */
const GOING_AWAY = 1001;
/**
 * How long a client gets to answer the close frame before its socket is cut: the server's
 * close waits for every connection, and ws alone would wait 30 s for one that never answers.
 */
const CLOSE_ANSWER_MS = 2000;

/**
 * The open WebSocket sessions, so that shutdown can treat them as HTTP requests are treated:
 * running requests may finish within the grace period (or end with an error event when the
 * engine stops), new ones are refused, and each socket closes once nothing runs on it.
 */
export class WsSessions {
  private readonly open = new Set<WsSession>();
  private closing = false;

  get isClosing(): boolean {
    return this.closing;
  }

  add(session: WsSession): void {
    this.open.add(session);
  }

  delete(session: WsSession): void {
    this.open.delete(session);
  }

  /** Shutdown begins: idle sockets close now, busy ones when their last request ends. */
  beginShutdown(): void {
    this.closing = true;
    for (const session of this.open) session.closeIfIdle();
  }
}

class WsSession {
  private readonly active = new Map<string, AbortController>();

  constructor(
    private readonly socket: WebSocket,
    private readonly ctx: ServerContext,
    private readonly sessions: WsSessions,
    private readonly log: FastifyBaseLogger,
  ) {}

  closeIfIdle(): void {
    if (this.sessions.isClosing && this.active.size === 0 && this.socket.readyState === this.socket.OPEN) {
      this.socket.close(GOING_AWAY, 'server shutting down');
      setTimeout(() => this.socket.terminate(), CLOSE_ANSWER_MS).unref();
    }
  }

  onMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    let id: string | null = null;
    try {
      if (isBinary) throw invalidRequest('Messages must be JSON text, not binary.');
      const parsed = parseJson(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(toBuffers(data)).toString('utf8'));
      id =
        typeof parsed === 'object' && parsed !== null && typeof Reflect.get(parsed, 'id') === 'string'
          ? String(Reflect.get(parsed, 'id'))
          : null;
      const message = parseWith(WsClientMessage, parsed, 'message');
      if (message.type === 'response.cancel') return this.cancel(message.id);
      if (this.sessions.isClosing)
        throw unavailable('The server is shutting down; this connection takes no new requests.', 'shutting_down');
      if (this.active.has(message.id))
        throw invalidRequest(`A request with id "${message.id}" is already running on this connection.`, 'id');
      const endpoint = message.endpoint ?? 'chat.completions';
      if (message.request === undefined) throw invalidRequest("Missing required parameter: 'request'.", 'request');
      void this.run(message.id, endpoint, message.request);
    } catch (err) {
      this.sendError(id, err);
    }
  }

  /** The client went away: stop all its generations. */
  closeAll(): void {
    for (const controller of this.active.values()) controller.abort();
  }

  private cancel(id: string): void {
    const controller = this.active.get(id);
    if (controller === undefined) throw invalidRequest(`No request with id "${id}" is running on this connection.`, 'id');
    controller.abort();
  }

  private prepare(endpoint: WsEndpoint, body: unknown, model: ServedModel): PreparedRequest {
    return endpoint === 'completions'
      ? prepareCompletion(parseWith(CompletionRequest, body, 'request'), model)
      : prepareChat(parseWith(ChatCompletionRequest, body, 'request'), model);
  }

  private async run(id: string, endpoint: WsEndpoint, body: unknown): Promise<void> {
    const controller = new AbortController();
    this.active.set(id, controller);
    try {
      const model = this.ctx.slot.get();
      const prepared = this.prepare(endpoint, body, model);
      const log = (message: string): void => this.log.error({ requestId: id }, message);
      const { requests, n } = prepared;
      const generation = await Generation.start({ engine: model.engine, gate: this.ctx.gate, requests, n, signal: controller.signal, log });
      const { meta } = prepared.format;
      const promptTokens = generation.usage.prompt_tokens;
      this.send({
        type: 'response.created',
        id,
        response_id: meta.id,
        model: meta.model,
        created: meta.created,
        prompt_tokens: promptTokens,
      });
      for await (const update of generation.updates()) {
        for (const event of prepared.format.streamEvents(update)) this.send({ type: Reflect.get(event, 'type'), id, ...event });
      }
      const status = generation.cancelled ? 'cancelled' : 'completed';
      this.send({ type: 'response.done', id, status, response: prepared.format.response(generation) });
    } catch (err) {
      this.sendError(id, err);
    } finally {
      this.active.delete(id);
      this.closeIfIdle();
    }
  }

  private send(event: object): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(event));
  }

  private sendError(id: string | null, err: unknown): void {
    if (!(err instanceof ApiError)) this.log.error({ err, requestId: id }, 'websocket request failed');
    const apiError = err instanceof ApiError ? err : internalError();
    this.send({ type: 'error', id, error: apiError.toBody().error });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalidRequest('The message is not valid JSON.');
  }
}

function toBuffers(data: ArrayBuffer | Buffer[]): Buffer[] {
  return Array.isArray(data) ? data : [Buffer.from(data)];
}

export function wsRoutes(app: FastifyInstance, ctx: ServerContext, sessions: WsSessions): void {
  app.route({
    method: 'GET',
    url: '/v1/ws',
    // A plain GET (no upgrade) gets an answer in the envelope, not an empty 404.
    handler: async (_request, reply) => {
      void reply.header('upgrade', 'websocket');
      throw new ApiError(
        426,
        'This endpoint speaks WebSocket: open it with an "Upgrade: websocket" request.',
        'invalid_request_error',
        null,
        'upgrade_required',
      );
    },
    wsHandler: (socket, request) => {
      const session = new WsSession(socket, ctx, sessions, request.log);
      sessions.add(session);
      socket.on('message', (data, isBinary) => session.onMessage(data, isBinary));
      socket.on('close', () => {
        sessions.delete(session);
        session.closeAll();
      });
      // Opened just as shutdown began: nothing will run on it.
      session.closeIfIdle();
    },
  });
}
