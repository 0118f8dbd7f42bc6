// One Ajv instance validates every request body (HTTP routes through fastify, WebSocket
// messages directly), and one translation turns its errors into a 400 that names the field
// the way OpenAI does ("Invalid type for 'temperature': ...").
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { TSchema, Static } from '@sinclair/typebox';
import { ApiError, invalidRequest } from '../openai/errors.ts';

/** Strict types (no "0.5" -> 0.5 coercion: OpenAI rejects it), unknown fields left alone. */
export const ajv = new Ajv({
  allErrors: false,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  verbose: true,
  strict: false,
});

/** "/messages/0/content" -> "messages[0].content"; a missing property is appended. */
function paramName(error: ErrorObject): string | null {
  const parts = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (error.keyword === 'required') parts.push(String(error.params.missingProperty));
  let name = '';
  for (const part of parts) name += /^\d+$/.test(part) ? `[${part}]` : name === '' ? part : `.${part}`;
  return name === '' ? null : name;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'a string';
  return typeof value === 'number' ? `the number ${value}` : `a ${typeof value}`;
}

const TYPE_NAMES: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean',
  array: 'an array',
  object: 'an object',
};

function describeError(error: ErrorObject, field: string): string {
  const p = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return `Missing required parameter: '${field}'.`;
    case 'type':
      return (
        `Invalid type for '${field}': expected ${TYPE_NAMES[String(p.type)] ?? String(p.type)}, but got ` +
        `${describeValue(error.data)} instead.`
      );
    case 'minimum':
      return `Invalid value for '${field}': ${String(error.data)} is below the minimum of ${String(p.limit)}.`;
    case 'exclusiveMinimum':
      return `Invalid value for '${field}': ${String(error.data)} must be greater than ${String(p.limit)}.`;
    case 'maximum':
      return `Invalid value for '${field}': ${String(error.data)} is above the maximum of ${String(p.limit)}.`;
    case 'exclusiveMaximum':
      return `Invalid value for '${field}': ${String(error.data)} must be less than ${String(p.limit)}.`;
    case 'minItems':
      return `Invalid '${field}': expected at least ${String(p.limit)} item(s), got ${(error.data as unknown[]).length}.`;
    case 'maxItems':
      return `Invalid '${field}': expected at most ${String(p.limit)} item(s), got ${(error.data as unknown[]).length}.`;
    case 'minLength':
      return `Invalid '${field}': expected a string of at least ${String(p.limit)} character(s).`;
    case 'maxLength':
      return `Invalid '${field}': expected a string of at most ${String(p.limit)} character(s).`;
    case 'enum':
      return (
        `Invalid value for '${field}': expected one of ` +
        `${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(error.data)}.`
      );
    case 'const':
      return `Invalid value for '${field}': expected ${JSON.stringify(p.allowedValue)}, got ${JSON.stringify(error.data)}.`;
    case 'anyOf': {
      const expected = (error.parentSchema as { description?: unknown } | undefined)?.description;
      return `Invalid value for '${field}': expected ${typeof expected === 'string' ? expected : 'one of the allowed forms'}.`;
    }
    default:
      return `Invalid value for '${field}': ${error.message ?? 'not allowed'}.`;
  }
}

/** The error to report: an anyOf (the union's own description) beats the branch errors before it. */
export function validationError(errors: readonly ErrorObject[], what = 'request body'): ApiError {
  const unions = errors.filter((e) => e.keyword === 'anyOf');
  const chosen = unions.length > 0 ? unions[unions.length - 1] : errors[0];
  if (chosen === undefined) return invalidRequest(`Invalid ${what}.`);
  const param = paramName(chosen);
  if (param === null) {
    return invalidRequest(
      chosen.keyword === 'type' ? `The ${what} must be a JSON object.` : `Invalid ${what}: ${chosen.message ?? 'not allowed'}.`,
    );
  }
  return invalidRequest(describeError(chosen, param), param);
}

/** OpenAI treats a null optional field as absent; so do we (top level only). */
export function dropNullFields(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== null));
}

const compiled = new WeakMap<TSchema, ValidateFunction>();

/** Validates outside fastify (WebSocket messages) with the same rules and messages. */
export function parseWith<T extends TSchema>(schema: T, value: unknown, what?: string): Static<T> {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  const body = dropNullFields(value);
  if (!validate(body)) throw validationError(validate.errors ?? [], what);
  return body as Static<T>;
}
