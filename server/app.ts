// buildApp: the Fastify instance with its plugins, hooks, error mapping and routes. It never
// listens (main.ts does; tests listen on port 0 or call inject). It takes the model as a
// promise, so the server can answer /health with 503 while the model is still loading.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import websocket from '@fastify/websocket';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { LogLevel } from './config.ts';
import { ServerMetrics } from './metrics/server-metrics.ts';
import { ApiError, fromFrameworkError, internalError, invalidApiKey } from './openai/errors.ts';
import { AdmissionGate } from './openai/generation.ts';
import { registerHostGuard } from './hosts.ts';
import { registerOriginGuard } from './origins.ts';
import { chatRoutes } from './routes/chat.ts';
import { completionRoutes } from './routes/completions.ts';
import type { ServerContext } from './routes/context.ts';
import { healthRoutes } from './routes/health.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { modelRoutes } from './routes/models.ts';
import { tokenizeRoutes } from './routes/tokenize.ts';
import { WsSessions, wsRoutes } from './routes/ws.ts';
import { ajv, dropNullFields, validationError } from './schemas/validation.ts';
import { ModelSlot, type ServedModel } from './served-model.ts';

export interface AppOptions {
  /** The model, or its loading; requests get 503 until it resolves. */
  model: ServedModel | Promise<ServedModel>;
  /** Accepted bearer tokens; empty = no authentication. */
  apiKeys?: readonly string[];
  /** Web origins allowed besides the server's own (see origins.ts); default none. */
  allowedOrigins?: readonly string[];
  /** Host header names answered besides loopback ones (hosts.ts: acceptedHosts); default any. */
  acceptedHosts?: ReadonlySet<string> | null;
  maxQueue?: number;
  maxBodyBytes?: number;
  /** Request and error logging (pino); none when left out. */
  logLevel?: LogLevel;
  /** Tokens per layer in the expert-load window (default 1024). */
  expertLoadWindow?: number;
  /** Per-(layer, expert) counters in /metrics (default true). */
  perExpertMetrics?: boolean;
}

export interface App {
  app: FastifyInstance;
  slot: ModelSlot;
  gate: AdmissionGate;
  metrics: ServerMetrics;
}

/** The methods a 405 may name. */
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** Paths anyone may call (load balancers' health checks). */
const PUBLIC_PATHS = new Set(['/health']);
/** Paths browsers open directly (no headers): the WebSocket and the dashboard page. */
const QUERY_KEY_PATHS = new Set(['/v1/ws', '/dashboard']);

const digest = (key: string): Buffer => createHash('sha256').update(key).digest();

/** Constant-time comparison against every configured key. */
function keyChecker(apiKeys: readonly string[]): (offered: string | null) => boolean {
  const expected = apiKeys.map(digest);
  return (offered) => {
    if (offered === null) return false;
    const candidate = digest(offered);
    return expected.reduce((ok, key) => timingSafeEqual(key, candidate) || ok, false);
  };
}

/** "Authorization: Bearer KEY"; browsers cannot set headers on a WebSocket or a page, so those also take ?api_key=KEY. */
function offeredKey(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  const bearer = header?.match(/^Bearer\s+(.+)$/i)?.[1]?.trim();
  if (bearer) return bearer;
  if (!QUERY_KEY_PATHS.has(request.routeOptions.url ?? '')) return null;
  const query = request.query as Record<string, unknown> | undefined;
  return typeof query?.api_key === 'string' ? query.api_key : null;
}

function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.retryAfterSeconds !== null) void reply.header('retry-after', String(error.retryAfterSeconds));
  return reply.code(error.status).type('application/json').send(error.toBody());
}

function errorHandler(maxBodyBytes: number) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (err instanceof ApiError) return sendError(reply, err);
    if (err.validation) return sendError(reply, validationError(err.validation as Parameters<typeof validationError>[0]));
    const framework = fromFrameworkError(err, maxBodyBytes);
    if (framework !== null) return sendError(reply, framework);
    request.log.error({ err }, 'request failed');
    return sendError(reply, internalError());
  };
}

/**
 * Errors fastify answers before routing (a path that is not valid percent-encoding, a path
 * parameter over 100 characters): in the envelope, without echoing the URL (which may hold
 * ?api_key=).
 */
function frameworkErrors(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const error =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new ApiError(414, 'A path segment is longer than 100 characters.', 'invalid_request_error', null, 'uri_too_long')
      : new ApiError(
          400,
          'The URL is not valid: a path segment is not valid percent-encoding.',
          'invalid_request_error',
          null,
          'invalid_url',
        );
  void sendError(reply, error);
}

/**
 * Requests Node's HTTP parser refuses (a bad request line or chunk size, Content-Length with
 * Transfer-Encoding, headers too large, a request too slow): answered in the envelope too,
 * as Node would otherwise answer, then the connection is closed.
 */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, message, code] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'The request headers are too large.', 'headers_too_large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'The request took too long to arrive.', 'request_timeout']
        : [400, 'Bad Request', 'The request is not valid HTTP.', 'malformed_request'];
  const body = JSON.stringify(new ApiError(status, message, 'invalid_request_error', null, code).toBody());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ` +
        `${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** Keeps API keys out of logged URLs. */
const redactUrl = (url: string | undefined): string | undefined => url?.replace(/([?&]api_key=)[^&]*/gi, '$1***');

function loggerOptions(level: LogLevel | undefined): FastifyServerOptions['logger'] {
  if (level === undefined || level === 'silent') return false;
  return {
    level,
    serializers: {
      req: (req: FastifyRequest) => ({ method: req.method, url: redactUrl(req.url), remoteAddress: req.ip }),
    },
  };
}

export async function buildApp(options: AppOptions): Promise<App> {
  const maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
  const app = Fastify({ logger: loggerOptions(options.logLevel), bodyLimit: maxBodyBytes, frameworkErrors, clientErrorHandler });
  const slot = new ModelSlot(Promise.resolve(options.model));
  const gate = new AdmissionGate(options.maxQueue ?? 64);
  const metrics = new ServerMetrics({
    expertLoadWindow: options.expertLoadWindow ?? 1024,
    perExpertSeries: options.perExpertMetrics ?? true,
  });
  // After the slot's own handler (registered first), so routes see the model and its metrics together.
  Promise.resolve(options.model).then(
    (model) => metrics.attach(model),
    () => {},
  );
  const ctx: ServerContext = { slot, gate, metrics };

  // First: its onRequest hook marks upgrade requests, so a refused upgrade's socket is closed.
  // On close, sockets are not dropped at once (the plugin's default): their running requests
  // get the same grace period as HTTP ones (main.ts), and each closes once idle.
  const wsSessions = new WsSessions();
  await app.register(websocket, { options: { maxPayload: maxBodyBytes }, preClose: async () => wsSessions.beginShutdown() });
  // Before authentication: requests to a foreign host name (DNS rebinding) and pages from
  // foreign origins get 403, preflights need no key.
  registerHostGuard(app, options.acceptedHosts ?? null);
  registerOriginGuard(app, options.allowedOrigins ?? []);
  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
  app.setErrorHandler(errorHandler(maxBodyBytes));
  app.setNotFoundHandler((request, reply) => {
    // A known path asked with another method is a 405 naming the methods it takes.
    const path = request.url.split('?')[0];
    const allowed = HTTP_METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
    if (allowed.length > 0) {
      void reply.header('allow', allowed.join(', '));
      const message = `${request.method} is not allowed on ${path}; it takes ${allowed.join(', ')}.`;
      return sendError(reply, new ApiError(405, message, 'invalid_request_error', null, 'method_not_allowed'));
    }
    return sendError(
      reply,
      new ApiError(404, `Unknown endpoint: ${request.method} ${redactUrl(request.url)}`, 'invalid_request_error', null, 'unknown_url'),
    );
  });
  app.addHook('preValidation', async (request) => {
    request.body = dropNullFields(request.body);
  });
  const apiKeys = options.apiKeys ?? [];
  if (apiKeys.length > 0) {
    const isValid = keyChecker(apiKeys);
    app.addHook('onRequest', async (request) => {
      if (!PUBLIC_PATHS.has(request.routeOptions.url ?? '') && !isValid(offeredKey(request))) throw invalidApiKey();
    });
  }
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, not the URL: bounded label values.
    metrics.onHttpResponse(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode);
  });
  app.addHook('onClose', async () => metrics.detach());
  for (const routes of [healthRoutes, modelRoutes, chatRoutes, completionRoutes, tokenizeRoutes, metricsRoutes]) {
    routes(app, ctx);
  }
  wsRoutes(app, ctx, wsSessions);
  return { app, slot, gate, metrics };
}
