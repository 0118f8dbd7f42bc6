// The request fields that constrain output, narrowed from the parsed body to one GrammarSpec
// and the field that carried it (so a grammar that fails to compile becomes a 400 naming it).
// Accepted, following OpenAI and vLLM's names:
// - response_format: {"type": "json_object"} | {"type": "json_schema", "json_schema":
//   {"name", "schema", "strict"?}} | {"type": "text"} (no constraint);
// - structured_outputs: {json | regex | grammar | choice | json_object} (vLLM >= 0.10's field,
//   the one we document);
// - guided_json, guided_regex, guided_grammar, guided_choice (vLLM's older top-level fields,
//   accepted as aliases because existing clients still send them).
// At most one of them per request.
import type { GrammarSpec } from '../engine/grammar/grammar-spec.ts';
import { invalidRequest, type ApiError } from './errors.ts';

export interface StructuredOutputRequest {
  spec: GrammarSpec;
  /** The request field that carried it, for error messages: "response_format.json_schema.schema". */
  field: string;
}

type Body = Readonly<Record<string, unknown>>;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A schema given as an object, or (vLLM allows it) as a JSON string holding one. */
function schemaValue(value: unknown, field: string): Record<string, unknown> | boolean {
  let schema = value;
  if (typeof value === 'string') {
    try {
      schema = JSON.parse(value) as unknown;
    } catch {
      throw invalidRequest(`${field} is a string that is not JSON`, field);
    }
  }
  if (typeof schema === 'boolean' || isObject(schema)) return schema;
  throw invalidRequest(`${field} must be a JSON schema object`, field);
}

function stringField(value: unknown, field: string): string {
  if (typeof value === 'string' && value.length > 0) return value;
  throw invalidRequest(`${field} must be a non-empty string`, field);
}

function choiceField(value: unknown, field: string): string[] {
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) return value as string[];
  throw invalidRequest(`${field} must be a non-empty list of strings`, field);
}

function fromResponseFormat(value: unknown): StructuredOutputRequest | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw invalidRequest('response_format must be an object', 'response_format');
  switch (value.type) {
    case 'text':
      return null;
    case 'json_object':
      return { spec: { type: 'json_object' }, field: 'response_format' };
    case 'json_schema': {
      const jsonSchema = value.json_schema;
      if (!isObject(jsonSchema)) throw invalidRequest('response_format.json_schema must be an object', 'response_format.json_schema');
      const field = 'response_format.json_schema.schema';
      return { spec: { type: 'json_schema', schema: schemaValue(jsonSchema.schema, field) }, field };
    }
    default:
      throw invalidRequest('response_format.type must be "text", "json_object" or "json_schema"', 'response_format.type');
  }
}

/** One vLLM-style constraint object: {json | regex | grammar | choice | json_object}. */
function fromConstraintFields(
  fields: Body,
  prefix: string,
  names: Record<'json' | 'regex' | 'grammar' | 'choice', string>,
): StructuredOutputRequest[] {
  const found: StructuredOutputRequest[] = [];
  const at = (name: string) => `${prefix}${name}`;
  if (fields[names.json] !== undefined)
    found.push({ spec: { type: 'json_schema', schema: schemaValue(fields[names.json], at(names.json)) }, field: at(names.json) });
  if (fields[names.regex] !== undefined)
    found.push({ spec: { type: 'regex', pattern: stringField(fields[names.regex], at(names.regex)) }, field: at(names.regex) });
  if (fields[names.grammar] !== undefined)
    found.push({ spec: { type: 'grammar', grammar: stringField(fields[names.grammar], at(names.grammar)) }, field: at(names.grammar) });
  if (fields[names.choice] !== undefined)
    found.push({ spec: { type: 'choice', choices: choiceField(fields[names.choice], at(names.choice)) }, field: at(names.choice) });
  return found;
}

/**
 * The request's output constraint, or null when it has none. Throws an ApiError (400) naming
 * the field when one is malformed or when more than one is given.
 */
export function structuredOutputFromRequest(body: Body): StructuredOutputRequest | null {
  const found: StructuredOutputRequest[] = [];
  const fromFormat = fromResponseFormat(body.response_format);
  if (fromFormat !== null) found.push(fromFormat);
  const outputs = body.structured_outputs;
  if (outputs !== undefined && outputs !== null) {
    if (!isObject(outputs)) throw invalidRequest('structured_outputs must be an object', 'structured_outputs');
    found.push(
      ...fromConstraintFields(outputs, 'structured_outputs.', { json: 'json', regex: 'regex', grammar: 'grammar', choice: 'choice' }),
    );
    if (outputs.json_object === true) found.push({ spec: { type: 'json_object' }, field: 'structured_outputs.json_object' });
  }
  found.push(
    ...fromConstraintFields(body, '', { json: 'guided_json', regex: 'guided_regex', grammar: 'guided_grammar', choice: 'guided_choice' }),
  );
  if (found.length > 1) {
    throw invalidRequest(`only one output constraint per request; got ${found.map((f) => f.field).join(', ')}`, found[1].field);
  }
  return found[0] ?? null;
}

/** The 400 for a constraint the grammar engine could not compile. */
export function uncompilableConstraint(request: StructuredOutputRequest | { field: string }, reason: string): ApiError {
  return invalidRequest(`${request.field} cannot be used to constrain the output: ${reason}`, request.field);
}
