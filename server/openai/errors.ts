// Errors as OpenAI's clients understand them: one typed error inside the server, one envelope
// {error: {message, type, param, code}} on the wire. 5xx bodies carry a generic message only.

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  override name = 'ApiError';

  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Seconds for a Retry-After header (429, 503). */
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** What a client sees for any fault of ours; the details go to the log only. */
export const INTERNAL_ERROR_MESSAGE = 'The server had an error while processing your request.';

export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, code);
}

export function modelNotFound(requested: string, served: string): ApiError {
  return new ApiError(
    404,
    `The model '${requested}' does not exist. This server serves '${served}'.`,
    'invalid_request_error',
    'model',
    'model_not_found',
  );
}

export function invalidApiKey(): ApiError {
  return new ApiError(
    401,
    'Missing or invalid API key. Send it as "Authorization: Bearer <key>".',
    'authentication_error',
    null,
    'invalid_api_key',
  );
}

export function queueFull(maxQueue: number): ApiError {
  return new ApiError(
    429,
    `The server is busy: ${maxQueue} requests are already being served. Retry shortly.`,
    'rate_limit_error',
    null,
    'queue_full',
    1,
  );
}

export function unavailable(message: string, code: string): ApiError {
  return new ApiError(503, message, 'server_error', null, code, 5);
}

export function internalError(): ApiError {
  return new ApiError(500, INTERNAL_ERROR_MESSAGE, 'server_error');
}

/** Errors fastify raises itself (bad JSON, body too large, wrong content type): all 4xx, all safe to show. */
export function fromFrameworkError(err: { statusCode?: number; message: string; code?: string }, maxBodyBytes: number): ApiError | null {
  const status = err.statusCode;
  if (status === undefined || status < 400 || status >= 500) return null;
  if (status === 413) {
    return new ApiError(
      413,
      `The request body is larger than the limit of ${maxBodyBytes} bytes.`,
      'invalid_request_error',
      null,
      'request_too_large',
    );
  }
  return new ApiError(status, err.message, 'invalid_request_error');
}
