// The distillation export against the real tiny model, checked as the issue asks: exported
// logprobs equal /v1/completions echo logprobs (1e-5), the top-k probabilities plus the tail
// sum to 1 (1e-5) at every position, router choices equal the /metrics expert counters over
// the same tokens (and the float64 reference's experts and gate weights); plus which tokens
// are response tokens, --generate, resume, and the TypeScript reader.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { conversationTokens } from '../../server/distill/conversations.ts';
import { type DistillOptions, runDistillJob } from '../../server/distill/distill-job.ts';
import type { Manifest } from '../../server/distill/distill-shards.ts';
import { loadShard, readPosition, type Shard } from '../../server/distill/read-shard.ts';
import type { ChatMessage } from '../../server/schemas/chat.ts';
import { ChatTemplate } from '../../server/tokenizer/chat-template.ts';
import { parseSamples, value } from '../helpers/prometheus-text.ts';
import { ReferenceDeepseek } from '../reference/deepseek-reference.ts';
import { MODEL, startTestModel, type TestModel } from './helpers.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

const conversations: Array<{ id: string; messages: ChatMessage[] }> = [
  {
    id: 'capital',
    messages: [
      { role: 'system', content: 'You answer in one word.' },
      { role: 'user', content: 'What is the capital of France?' },
      { role: 'assistant', content: 'Paris, of course.' },
    ],
  },
  {
    id: 'two-turns',
    messages: [
      { role: 'user', content: 'Count to three.' },
      { role: 'assistant', content: 'One, two, three.' },
      { role: 'user', content: 'And back?' },
      { role: 'assistant', content: 'Three, two, one.' },
    ],
  },
  {
    id: 'short',
    messages: [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello there!' },
    ],
  },
];

interface EchoLogprobs {
  tokens: string[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null>;
}

describe('distillation export (tiny model)', () => {
  let test: TestModel;
  let built: App;
  let root: string;

  beforeAll(async () => {
    test = await startTestModel();
    built = await buildApp({ model: test.model });
    root = mkdtempSync(join(tmpdir(), 'moe-distill-'));
  });
  afterAll(async () => {
    await built?.app.close();
    await test?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  function options(name: string, overrides: Partial<DistillOptions> = {}): DistillOptions {
    const input = join(root, `${name}.jsonl`);
    writeFileSync(input, conversations.map((c) => JSON.stringify(c)).join('\n') + '\n');
    return {
      input,
      outDir: join(root, name),
      modelDir: test.tiny.dir,
      topK: 256,
      temperature: 1,
      router: false,
      generate: null,
      maxInFlight: 4,
      maxShardBytes: 1 << 30,
      ...overrides,
    };
  }

  const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const shardsOf = (dir: string): Shard[] => manifestOf(dir).shards.map((s) => loadShard(join(dir, s.file)));

  /** Rows of conversation `id`: [shard, first row, row count, first input token]. */
  function rowsOf(shards: Shard[], id: string): { shard: Shard; rows: number[]; inputStart: number; inputEnd: number } {
    for (const shard of shards) {
      const s = shard.ids.indexOf(id);
      if (s < 0) continue;
      const ro = shard.get('response_offsets').data as BigInt64Array;
      const so = shard.get('sequence_offsets').data as BigInt64Array;
      const rows = Array.from({ length: Number(ro[s + 1] - ro[s]) }, (_, i) => Number(ro[s]) + i);
      return { shard, rows, inputStart: Number(so[s]), inputEnd: Number(so[s + 1]) };
    }
    throw new Error(`no conversation ${id}`);
  }

  it('finds the response tokens: each assistant turn with the end of turn the template adds', () => {
    const { ids, spans } = conversationTokens(test.model, conversations[1].messages);
    const decode = (from: number, to: number) => test.model.tokenizer.decode(ids.slice(from, to), false);
    expect(spans).toHaveLength(2);
    // Before each span: the conversation up to the opened turn; through it: the answer and the end of turn.
    expect(decode(0, spans[0].start).endsWith('Count to three.\n\nAssistant:')).toBe(true);
    expect(decode(0, spans[0].end).endsWith('Assistant: One, two, three.</s>')).toBe(true);
    expect(decode(0, spans[1].start).endsWith('And back?\n\nAssistant:')).toBe(true);
    expect(spans[1].end).toBe(ids.length);
    expect(decode(spans[1].start, spans[1].end)).toBe('Three, two, one.</s>');
    // A template that rewrites earlier answers once a later turn follows cannot be split: refused.
    const rewriting = new ChatTemplate(
      "{% for m in messages %}{% if m['role'] == 'assistant' and loop.last %}A: {{ m['content'] }}{% elif m['role'] == 'assistant' %}A: ...{% else %}U: {{ m['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt %}A:{% endif %}",
      test.model.tokenizer.config,
    );
    expect(() => conversationTokens({ ...test.model, chatTemplate: rewriting }, conversations[1].messages)).toThrow(
      /renders earlier turns differently/,
    );
    expect(() => conversationTokens(test.model, [{ role: 'user', content: 'Hi' }])).toThrow(/no assistant turn/);
  });

  it('exports logprobs equal to /v1/completions echo logprobs, and top-k plus tail sum to 1 everywhere', async () => {
    const opts = options('scored');
    const summary = await runDistillJob(test.model, opts);
    expect(summary).toMatchObject({ numScored: 3, numErrors: 0, stoppedBy: null });
    const manifest = manifestOf(opts.outDir);
    expect(manifest).toMatchObject({ format: 'moe-server-distill', top_k: 256, temperature: 1, router: null });
    expect(manifest.counts.sequences).toBe(3);
    const shards = shardsOf(opts.outDir);
    for (const { id } of conversations) {
      const { shard, rows, inputStart, inputEnd } = rowsOf(shards, id);
      const inputIds = Array.from((shard.get('input_ids').data as Int32Array).subarray(inputStart, inputEnd));
      const response = await built.app.inject({
        method: 'POST',
        url: '/v1/completions',
        payload: { model: MODEL, prompt: inputIds, echo: true, logprobs: 20, max_tokens: 0 },
      });
      const echo = response.json<{ choices: Array<{ logprobs: EchoLogprobs }> }>().choices[0].logprobs;
      for (const row of rows) {
        const position = readPosition(shard, row);
        expect(position.token).toBe(inputIds[position.position]);
        expect(Math.abs(position.logprob - echo.token_logprobs[position.position]!)).toBeLessThan(1e-5);
        // The echo's top 20 are the export's first 20 (by text; the tiny vocabulary's texts are distinct).
        const echoTop = echo.top_logprobs[position.position]!;
        for (const alt of position.top.slice(0, 20)) {
          const text = test.model.tokenTexts.get(alt.token).token;
          expect(Math.abs(alt.logprob - echoTop[text])).toBeLessThan(1e-5);
        }
        expect(Math.abs(position.totalProbability - 1)).toBeLessThan(1e-5);
        expect(position.tailLogprob).toBeLessThan(0);
      }
    }
  });

  it('exports router choices equal to the /metrics expert counters over the same tokens, and the reference gate weights', async () => {
    const metricsText = async () => (await built.app.inject({ method: 'GET', url: '/metrics' })).body;
    const before = parseSamples(await metricsText());
    const opts = options('router', { router: true, topK: 4 });
    await runDistillJob(test.model, opts);
    const after = parseSamples(await metricsText());
    const manifest = manifestOf(opts.outDir);
    expect(manifest.router).not.toBeNull();
    const { numMoeLayers, topK } = manifest.router!;
    const moeLayers = manifest.model.moe_layers as number[];
    const shards = shardsOf(opts.outDir);
    for (let l = 0; l < numMoeLayers; l++) {
      const counts = new Map<number, number>();
      for (const shard of shards) {
        const { data } = shard.get('router_expert_ids');
        const ids = data as Int32Array;
        for (let t = 0; t < ids.length / (numMoeLayers * topK); t++) {
          for (let j = 0; j < topK; j++) {
            const e = ids[(t * numMoeLayers + l) * topK + j];
            counts.set(e, (counts.get(e) ?? 0) + 1);
          }
        }
      }
      const numExperts = test.model.engine.info.spec.mlp.find((m) => m.kind === 'moe')!;
      const n = numExperts.kind === 'moe' ? numExperts.numRoutedExperts : 0;
      for (let e = 0; e < n; e++) {
        const labels = { layer: String(moeLayers[l]), expert: String(e) };
        const delta = value(after, 'moe_expert_routed_tokens_total', labels) - value(before, 'moe_expert_routed_tokens_total', labels);
        expect({ layer: l, expert: e, count: counts.get(e) ?? 0 }).toEqual({ layer: l, expert: e, count: delta });
      }
    }
    // Every position's experts and weights: the float64 reference's (weights to float32 precision).
    const reference = ReferenceDeepseek.load(test.tiny.dir);
    const { shard, inputStart, inputEnd } = rowsOf(shards, 'two-turns');
    const inputIds = Array.from((shard.get('input_ids').data as Int32Array).subarray(inputStart, inputEnd));
    const expected = reference.newSequence().forward(inputIds);
    const experts = shard.get('router_expert_ids').data as Int32Array;
    const weights = shard.get('router_weights').data as Float32Array;
    inputIds.forEach((_, t) => {
      for (let l = 0; l < numMoeLayers; l++) {
        const at = ((inputStart + t) * numMoeLayers + l) * topK;
        expect(Array.from(experts.subarray(at, at + topK))).toEqual(expected.experts[t][l]);
        expected.gateWeights![t][l].forEach((w, j) => expect(Math.abs(weights[at + j] - w)).toBeLessThan(1e-5));
      }
    });
  });

  it('--generate: the teacher answers as /v1/chat/completions does, and that answer is scored', async () => {
    const opts = options('generated', { generate: { max_tokens: 6, temperature: 0 }, topK: 8 });
    const question = [{ role: 'user' as const, content: 'Name a colour.' }];
    writeFileSync(opts.input, JSON.stringify({ id: 'q', messages: question }) + '\n');
    const summary = await runDistillJob(test.model, opts);
    expect(summary.numScored).toBe(1);
    const viaApi = await built.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      payload: { model: MODEL, messages: question, max_tokens: 6, temperature: 0 },
    });
    const answer = viaApi.json<{ choices: Array<{ message: { content: string } }> }>().choices[0].message.content;
    const { ids, spans } = conversationTokens(test.model, [...question, { role: 'assistant', content: answer }]);
    const { shard, rows, inputStart, inputEnd } = rowsOf(shardsOf(opts.outDir), 'q');
    expect(Array.from((shard.get('input_ids').data as Int32Array).subarray(inputStart, inputEnd))).toEqual(ids);
    expect(rows.map((r) => readPosition(shard, r).position)).toEqual(
      Array.from({ length: spans[0].end - spans[0].start }, (_, i) => spans[0].start + i),
    );
  });

  it('resumes: a stopped export and its rerun hold every conversation once; errors are reported once', async () => {
    const opts = options('resumed', { maxShardBytes: 1 });
    writeFileSync(
      opts.input,
      [...conversations.map((c) => JSON.stringify(c)), 'not json', JSON.stringify(conversations[0])].join('\n') + '\n',
    );
    const stop = new AbortController();
    const progress = { update: () => stop.abort(), finish: () => {} };
    const first = await runDistillJob(test.model, { ...opts, maxInFlight: 1, signal: stop.signal, progress });
    expect(first.stoppedBy).toBe('signal');
    const second = await runDistillJob(test.model, opts);
    const third = await runDistillJob(test.model, opts);
    expect(third).toMatchObject({ numScored: 0, numErrors: 0 });
    const ids = shardsOf(opts.outDir).flatMap((s) => s.ids);
    expect(ids.sort()).toEqual(conversations.map((c) => c.id).sort());
    const errors = readFileSync(join(opts.outDir, 'errors.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; line: number; message: string });
    // The line that is not JSON, once; the repeated id is an error when its first line ran in the same run, else skipped as done.
    expect(errors.filter((e) => e.line === 4)).toHaveLength(1);
    expect(errors.every((e) => e.line === 4 || (e.line === 5 && /used by an earlier line/.test(e.message)))).toBe(true);
    expect(first.numScored + second.numScored).toBe(3);
  });

  it('reads a shard with the TypeScript reader script', () => {
    const shard = join(root, 'scored', 'shard-00000.safetensors');
    const printed = execFileSync(process.execPath, ['--import', 'tsx', 'server/distill/read-shard.ts', shard, '2'], {
      cwd: REPO,
      encoding: 'utf8',
    });
    const position = JSON.parse(printed) as { conversation: string; top: unknown[]; totalProbability: number };
    expect(position.conversation).toBe('capital');
    expect(position.top).toHaveLength(5);
    expect(Math.abs(position.totalProbability - 1)).toBeLessThan(1e-5);
  });
});
