// Constrained decoding through the real engine: a tiny random-weight model in its worker, its
// grammars compiled and matched in the grammar worker. Random weights never write valid JSON
// by chance, so schema-valid output here is the grammar's doing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationRequest, GrammarSpec } from '../../server/engine/api.ts';
import type { EngineClient } from '../../server/engine/client.ts';
import { collect, makeRequest, type RequestOverrides, startTinyEngine } from '../helpers/engine-client.ts';
import { testTokens, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

const EOS = 2;
const PERSON = {
  type: 'object',
  properties: {
    name: { enum: ['Ada', 'Grace', 'Edsger'] },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    admin: { type: 'boolean' },
  },
  required: ['name', 'age', 'admin'],
};

function constrained(spec: GrammarSpec, overrides: RequestOverrides = {}): GenerationRequest {
  return makeRequest(testTokens(12, 5), {
    maxTokens: 64,
    stopTokenIds: [EOS],
    seed: 3,
    sampling: { temperature: 1 },
    grammar: { spec, param: 'response_format' },
    ...overrides,
  });
}

describe('constrained decoding in the engine', () => {
  let model: TinyModel;
  let client: EngineClient;

  beforeAll(async () => {
    model = writeTinyModel({}, 31);
    client = await startTinyEngine(model);
  });
  afterAll(async () => {
    await client?.close();
    model?.remove();
  });

  it('samples only what the schema allows, and ends with the stop token where it is complete', async () => {
    for (const seed of [1, 2, 3]) {
      const run = await collect(client, constrained({ type: 'json_schema', schema: PERSON }, { seed }));
      expect(run.error).toBeNull();
      expect(run.finished?.finishReason).toBe('stop');
      expect(run.tokens.at(-1)).toBe(EOS);
      const value = JSON.parse(run.text) as Record<string, unknown>;
      expect(Object.keys(value).sort()).toEqual(['admin', 'age', 'name']);
      expect(['Ada', 'Grace', 'Edsger']).toContain(value.name);
      expect(Number.isInteger(value.age) && (value.age as number) <= 120).toBe(true);
      expect(typeof value.admin).toBe('boolean');
    }
  });

  it('the same request unconstrained is no JSON at all', async () => {
    const run = await collect(client, { ...constrained({ type: 'json_object' }), grammar: null });
    expect(() => JSON.parse(run.text)).toThrow();
  });

  it('regex and choice constraints, greedy and sampled', async () => {
    const regex = await collect(client, constrained({ type: 'regex', pattern: '[0-9]{3}-[a-z]{2,4}' }, { sampling: { temperature: 0 } }));
    expect(regex.text).toMatch(/^[0-9]{3}-[a-z]{2,4}$/);
    const choice = await collect(client, constrained({ type: 'choice', choices: ['yes', 'no', 'maybe later'] }));
    expect(['yes', 'no', 'maybe later']).toContain(choice.text);
  });

  it('logprobs stay the model’s own: the constrained first token reports the unconstrained distribution', async () => {
    const spec: GrammarSpec = { type: 'json_schema', schema: PERSON };
    const free = await collect(client, { ...constrained(spec, { topLogprobs: 5, maxTokens: 1 }), grammar: null });
    const bound = await collect(client, constrained(spec, { topLogprobs: 5, maxTokens: 1 }));
    const top = (run: typeof free) => run.events.flatMap((e) => (e.type === 'token' ? [e.logprob?.top] : []))[0];
    expect(top(bound)).toEqual(top(free));
    const first = bound.events.find((e) => e.type === 'token');
    expect(first?.type === 'token' && first.text).toMatch(/^\{/);
  });

  it('n choices each get their own matcher, batched with an unconstrained request that is not disturbed', async () => {
    const free = makeRequest(testTokens(20, 9), { maxTokens: 24 });
    const alone = await collect(client, free);
    const runs = await Promise.all([
      collect(client, free),
      ...[4, 5, 6].map((seed) => collect(client, constrained({ type: 'json_schema', schema: PERSON }, { seed }))),
    ]);
    expect(runs[0].tokens).toEqual(alone.tokens);
    for (const run of runs.slice(1)) expect(() => JSON.parse(run.text)).not.toThrow();
  });

  it('a stop string ends a constrained sequence (and its matcher) early', async () => {
    const run = await collect(client, constrained({ type: 'json_schema', schema: PERSON }, { stopStrings: ['"age"'] }));
    expect(run.finished?.finishReason).toBe('stop');
    expect(run.text).not.toContain('"age"');
    const next = await collect(client, constrained({ type: 'json_schema', schema: PERSON }));
    expect(() => JSON.parse(next.text)).not.toThrow();
  });

  it('a grammar that cannot be compiled is an invalid request naming the field; the engine goes on', async () => {
    const spec: GrammarSpec = { type: 'json_schema', schema: { type: 'objec' } };
    const refused = await collect(client, constrained(spec, { grammar: { spec, param: 'response_format.json_schema.schema' } }));
    expect(refused.error).toMatchObject({ kind: 'invalid_request', param: 'response_format.json_schema.schema' });
    expect(refused.error?.message).toMatch(/Unsupported type "objec"/);
    expect(refused.acceptedPromptTokens).toBeNull();
    const good = await collect(client, constrained({ type: 'json_object' }));
    expect(good.finished).not.toBeNull();
  });

  it('a request cancelled while its grammar compiles still ends', async () => {
    const controller = new AbortController();
    const spec: GrammarSpec = { type: 'json_schema', schema: { ...PERSON, title: 'cancelled while compiling' } };
    const pending = collect(client, constrained(spec), controller.signal);
    controller.abort();
    const run = await pending;
    expect(run.error === null ? run.finished?.finishReason : 'error').toBe('abort');
  });
});
