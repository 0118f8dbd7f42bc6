// One request of a batch job, answered exactly as its endpoint answers it over HTTP: the same
// schema, the same shaping (prepareChat / prepareCompletion) and the same response body, or
// the same error envelope and status.
import type { Engine } from '../engine/api.ts';
import { ApiError, internalError, invalidRequest } from '../openai/errors.ts';
import { type AdmissionGate, Generation } from '../openai/generation.ts';
import { prepareChat, prepareCompletion, type PreparedRequest } from '../openai/requests.ts';
import { ChatCompletionRequest } from '../schemas/chat.ts';
import { CompletionRequest } from '../schemas/completions.ts';
import { parseWith } from '../schemas/validation.ts';
import type { ServedModel } from '../served-model.ts';

export const BATCH_URLS = ['/v1/chat/completions', '/v1/completions'] as const;
export type BatchUrl = (typeof BATCH_URLS)[number];

export interface BatchAnswer {
  statusCode: number;
  body: object;
  /** Generated tokens (0 for an error). */
  completionTokens: number;
  /** Stopped by the job's signal: not an answer to write. */
  cancelled: boolean;
}

function prepare(url: BatchUrl, body: unknown, model: ServedModel): PreparedRequest {
  const prepared =
    url === '/v1/completions'
      ? prepareCompletion(parseWith(CompletionRequest, body), model)
      : prepareChat(parseWith(ChatCompletionRequest, body), model);
  // OpenAI's Batch API answers with whole bodies only.
  if (prepared.stream) throw invalidRequest("'stream' is not supported in batch jobs: each result is a whole response body.", 'stream');
  return prepared;
}

export async function answerBatchRequest(
  model: ServedModel & { engine: Engine },
  gate: AdmissionGate,
  url: BatchUrl,
  body: unknown,
  signal: AbortSignal,
  log: (message: string) => void,
): Promise<BatchAnswer> {
  try {
    const prepared = prepare(url, body, model);
    const { requests, n } = prepared;
    const generation = await Generation.start({ engine: model.engine, gate, requests, n, signal, log });
    for await (const update of generation.updates()) void update;
    const cancelled = generation.cancelled || signal.aborted;
    return { statusCode: 200, body: prepared.format.response(generation), completionTokens: generation.usage.completion_tokens, cancelled };
  } catch (err) {
    if (!(err instanceof ApiError)) log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    const apiError = err instanceof ApiError ? err : internalError();
    return { statusCode: apiError.status, body: apiError.toBody(), completionTokens: 0, cancelled: signal.aborted };
  }
}
