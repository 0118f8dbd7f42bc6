// Browser-origin safety. Any web page a user visits can send requests to a server on their
// machine: a text/plain POST or a WebSocket needs no CORS preflight, so without a check a
// foreign page could make a local server generate (no API key is the default). Requests
// that carry an Origin header (browsers send it on cross-origin fetches, on every POST and on
// every WebSocket handshake) are refused with 403 unless the origin is the server's own or
// listed in --allowed-origins; clients that send no Origin (curl, SDKs) are unaffected.
// Listed origins get CORS headers and preflight answers.
//
// Not @fastify/cors: it only adds or withholds CORS headers and still runs the request of an
// origin it does not allow (fastify/fastify-cors#51), which is exactly the attack here, and
// its catch-all OPTIONS route would turn every unknown path's 404 into a 405.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './openai/errors.ts';

/** In --allowed-origins: every origin (the protection off). */
export const ANY_ORIGIN = '*';

/** What a preflight answer may be cached for by the browser, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;

/** A configured origin as browsers serialise it (scheme://host[:port]), or null when it is not one. */
export function normalizeOrigin(raw: string): string | null {
  if (raw === ANY_ORIGIN) return raw;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (url.origin === 'null' || raw.replace(/\/$/, '').toLowerCase() !== url.origin.toLowerCase()) return null;
  return url.origin;
}

type OriginVerdict = 'none' | 'same' | 'listed' | 'foreign';

function originVerdict(request: FastifyRequest, allowed: ReadonlySet<string>): OriginVerdict {
  const origin = request.headers.origin;
  if (origin === undefined) return 'none';
  const host = request.headers.host?.toLowerCase();
  // The page the server itself served (the dashboard): same scheme-less host and port.
  if (host !== undefined && URL.canParse(origin) && new URL(origin).host === host) return 'same';
  return allowed.has(ANY_ORIGIN) || allowed.has(origin) ? 'listed' : 'foreign';
}

function foreignOrigin(origin: string): ApiError {
  const message =
    `Requests from the web origin ${JSON.stringify(origin)} are not allowed. Start the server with --allowed-origins ` +
    `${origin} (or MOE_SERVER_ALLOWED_ORIGINS) to let pages there call it.`;
  return new ApiError(403, message, 'invalid_request_error', null, 'origin_not_allowed');
}

function textPlainRefused(): ApiError {
  const message = 'A text/plain body is only accepted from an allowed web origin: send the JSON with "Content-Type: application/json".';
  return new ApiError(415, message, 'invalid_request_error', null, 'unsupported_media_type');
}

function answerPreflight(request: FastifyRequest, reply: FastifyReply, origin: string): FastifyReply {
  const requestedHeaders = request.headers['access-control-request-headers'];
  void reply.header('access-control-allow-methods', 'GET, POST, OPTIONS');
  // The origin is trusted: whatever headers its client sends (the openai SDK adds its own).
  if (typeof requestedHeaders === 'string') void reply.header('access-control-allow-headers', requestedHeaders);
  void reply.header('access-control-max-age', String(PREFLIGHT_MAX_AGE_S));
  void reply.header('access-control-allow-origin', origin);
  return reply.code(204).send();
}

/**
 * Registers the origin check (an onRequest hook: register it before authentication, so a
 * preflight, which carries no credentials, is answered) and the text/plain body parser.
 */
export function registerOriginGuard(app: FastifyInstance, allowedOrigins: readonly string[]): void {
  const allowed = new Set(allowedOrigins);
  app.addHook('onRequest', async (request, reply) => {
    const verdict = originVerdict(request, allowed);
    if (verdict === 'none' || verdict === 'same') return;
    const origin = request.headers.origin ?? '';
    if (verdict === 'foreign') throw foreignOrigin(origin);
    void reply.header('vary', 'Origin');
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      return answerPreflight(request, reply, origin);
    }
    void reply.header('access-control-allow-origin', origin);
    void reply.header('access-control-expose-headers', 'retry-after');
  });
  // fetch() sends a string body as text/plain, and browsers let any page send text/plain
  // without a preflight: read as JSON only from an origin the guard let through by name or as
  // the server's own; anything else (no Origin included) is told to send application/json.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser<string>('text/plain', { parseAs: 'string' }, (request, body, done) => {
    const verdict = originVerdict(request, allowed);
    if (verdict === 'same' || verdict === 'listed') parseJson(request, body, done);
    else done(textPlainRefused(), undefined);
  });
}
