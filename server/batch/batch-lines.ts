// The lines of OpenAI's Batch API files. Input: {"custom_id", "method": "POST", "url", "body"}.
// Output: {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}, with
// `response` for whatever the endpoint answered (errors included, as OpenAI writes them) and
// `error` for a line that never reached an endpoint (not JSON, no custom_id, a duplicate, an
// unknown url). Error lines also say which input line they answer (`error.line`, an
// extension), so that a rerun knows the lines without a custom_id it already reported.
import { randomBytes } from 'node:crypto';
import { isPlainObject } from '../../models/checkpoint/safetensors-header.ts';
import { BATCH_URLS, type BatchUrl } from './batch-request.ts';

export interface BatchRequestLine {
  customId: string;
  url: BatchUrl;
  body: unknown;
}

export interface BatchLineError {
  /** null when the line has no usable custom_id. */
  customId: string | null;
  code: string;
  message: string;
}

export interface BatchOutputLine {
  id: string;
  custom_id: string | null;
  response: { status_code: number; request_id: string; body: object } | null;
  error: { code: string; message: string; line: number } | null;
}

const randomId = (prefix: string): string => `${prefix}_${randomBytes(12).toString('hex')}`;

/** A request line, or why it cannot run. */
export function parseBatchLine(text: string): BatchRequestLine | BatchLineError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { customId: null, code: 'invalid_json', message: `the line is not JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!isPlainObject(value)) return { customId: null, code: 'invalid_line', message: 'the line is not a JSON object' };
  const customId = value.custom_id;
  if (typeof customId !== 'string' || customId === '') {
    return { customId: null, code: 'missing_custom_id', message: "the line has no 'custom_id' (a non-empty string)" };
  }
  if (value.method !== undefined && value.method !== 'POST') {
    return { customId, code: 'invalid_method', message: `'method' must be "POST", got ${JSON.stringify(value.method)}` };
  }
  const url = BATCH_URLS.find((u) => u === value.url);
  if (url === undefined) {
    return { customId, code: 'invalid_url', message: `'url' must be one of ${BATCH_URLS.join(', ')}, got ${JSON.stringify(value.url)}` };
  }
  if (!isPlainObject(value.body)) return { customId, code: 'invalid_body', message: "'body' must be a JSON object" };
  return { customId, url, body: value.body };
}

export function isLineError(line: BatchRequestLine | BatchLineError): line is BatchLineError {
  return 'code' in line;
}

export function responseLine(customId: string, statusCode: number, body: object): BatchOutputLine {
  return {
    id: randomId('batch_req'),
    custom_id: customId,
    response: { status_code: statusCode, request_id: randomId('req'), body },
    error: null,
  };
}

export function errorLine(lineNumber: number, error: BatchLineError): BatchOutputLine {
  return {
    id: randomId('batch_req'),
    custom_id: error.customId,
    response: null,
    error: { code: error.code, message: error.message, line: lineNumber },
  };
}

/** What an existing output file already answers: custom_ids, and input lines reported without one. */
export class AnsweredSet {
  readonly customIds = new Set<string>();
  readonly lineNumbers = new Set<number>();

  add(value: unknown): void {
    if (!isPlainObject(value)) return;
    if (typeof value.custom_id === 'string') this.customIds.add(value.custom_id);
    else if (isPlainObject(value.error) && typeof value.error.line === 'number') this.lineNumbers.add(value.error.line);
  }

  get size(): number {
    return this.customIds.size + this.lineNumbers.size;
  }
}
