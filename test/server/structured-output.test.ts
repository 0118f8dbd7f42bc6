// Request fields -> one output constraint (OpenAI response_format, vLLM structured_outputs and
// its older guided_* aliases), with 400s that name the field.
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../server/openai/errors.ts';
import { structuredOutputFromRequest, uncompilableConstraint } from '../../server/openai/structured-output.ts';

const SCHEMA = { type: 'object', properties: { a: { type: 'integer' } } };

function param(body: Record<string, unknown>): string | null {
  try {
    structuredOutputFromRequest(body);
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) return err.param;
    throw err;
  }
  return null;
}

describe('structured output request fields', () => {
  it('reads response_format', () => {
    expect(structuredOutputFromRequest({})).toBeNull();
    expect(structuredOutputFromRequest({ response_format: { type: 'text' } })).toBeNull();
    expect(structuredOutputFromRequest({ response_format: { type: 'json_object' } })).toEqual({
      spec: { type: 'json_object' },
      field: 'response_format',
    });
    expect(
      structuredOutputFromRequest({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: SCHEMA, strict: true } } }),
    ).toEqual({
      spec: { type: 'json_schema', schema: SCHEMA },
      field: 'response_format.json_schema.schema',
    });
  });

  it('reads structured_outputs and the guided_* aliases', () => {
    expect(structuredOutputFromRequest({ structured_outputs: { regex: '[a-z]+' } })?.spec).toEqual({ type: 'regex', pattern: '[a-z]+' });
    expect(structuredOutputFromRequest({ structured_outputs: { grammar: 'root ::= "a"' } })?.spec).toEqual({
      type: 'grammar',
      grammar: 'root ::= "a"',
    });
    expect(structuredOutputFromRequest({ structured_outputs: { choice: ['y', 'n'] } })?.spec).toEqual({
      type: 'choice',
      choices: ['y', 'n'],
    });
    expect(structuredOutputFromRequest({ structured_outputs: { json: JSON.stringify(SCHEMA) } })?.spec).toEqual({
      type: 'json_schema',
      schema: SCHEMA,
    });
    expect(structuredOutputFromRequest({ structured_outputs: { json_object: true } })?.spec).toEqual({ type: 'json_object' });
    expect(structuredOutputFromRequest({ guided_json: SCHEMA })).toEqual({
      spec: { type: 'json_schema', schema: SCHEMA },
      field: 'guided_json',
    });
    expect(structuredOutputFromRequest({ guided_choice: ['a'] })?.field).toBe('guided_choice');
  });

  it('400s name the field', () => {
    expect(param({ response_format: { type: 'xml' } })).toBe('response_format.type');
    expect(param({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: [1] } } })).toBe(
      'response_format.json_schema.schema',
    );
    expect(param({ structured_outputs: { regex: '' } })).toBe('structured_outputs.regex');
    expect(param({ guided_choice: [] })).toBe('guided_choice');
    expect(param({ guided_json: '{not json' })).toBe('guided_json');
    expect(param({ response_format: { type: 'json_object' }, guided_regex: 'a' })).toBe('guided_regex');
    const error = uncompilableConstraint({ spec: { type: 'regex', pattern: '[' }, field: 'structured_outputs.regex' }, "Unclosed '['");
    expect(error.toBody().error).toMatchObject({ param: 'structured_outputs.regex', type: 'invalid_request_error' });
  });
});
