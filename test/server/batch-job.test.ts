// Batch jobs against the stand-in engine (fast, predictable): OpenAI's line formats, results
// equal to what the endpoints answer, bad lines answered and passed, resume after a stop or a
// torn last line without a custom_id written twice, and a bounded number in flight.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { runBatchJob } from '../../server/batch/batch-job.ts';
import type { BatchOutputLine } from '../../server/batch/batch-lines.ts';
import { countLines, readLines } from '../../server/jobs/jsonl-file.ts';
import { standInModel, type StandInModel } from '../helpers/stand-in-engine.ts';

const chatLine = (id: string, maxTokens = 3): object => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { messages: [{ role: 'user', content: `Hi ${id}` }], max_tokens: maxTokens },
});
const completionLine = (id: string, maxTokens = 3): object => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/completions',
  body: { prompt: `Say ${id}`, max_tokens: maxTokens, logprobs: 1, echo: true },
});

function readOutput(file: string): BatchOutputLine[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as BatchOutputLine);
}

/** The body without what differs between two runs of one request (ids, time). */
function stable(body: object): object {
  const { id: _id, created: _created, ...rest } = body as { id: string; created: number };
  return rest;
}

describe('batch jobs (stand-in engine)', () => {
  let test: StandInModel;
  let built: App;
  let dir: string;
  let input: string;
  let output: string;

  beforeAll(async () => {
    test = standInModel();
    built = await buildApp({ model: test.model });
  });
  afterAll(async () => {
    await built?.app.close();
    test?.remove();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'moe-batch-'));
    input = join(dir, 'requests.jsonl');
    output = join(dir, 'results.jsonl');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const writeInput = (lines: Array<object | string>): void =>
    writeFileSync(input, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');

  it('answers each line in OpenAI batch format with the body its endpoint returns', async () => {
    writeInput([chatLine('a'), completionLine('b')]);
    const summary = await runBatchJob(test.model, { input, output, maxInFlight: 4 });
    expect(summary).toMatchObject({ numInputLines: 2, numWritten: 2, numFailed: 0, numSkipped: 0, stoppedBy: null });
    const lines = readOutput(output);
    expect(lines.map((l) => l.custom_id).sort()).toEqual(['a', 'b']);
    for (const line of lines) {
      expect(line.id).toMatch(/^batch_req_/);
      expect(line.error).toBeNull();
      expect(line.response?.status_code).toBe(200);
      expect(line.response?.request_id).toMatch(/^req_/);
      const request = [chatLine('a'), completionLine('b')].find((r) => (r as { custom_id: string }).custom_id === line.custom_id) as {
        url: string;
        body: object;
      };
      const viaHttp = await built.app.inject({ method: 'POST', url: request.url, payload: request.body });
      expect(stable(line.response!.body)).toEqual(stable(viaHttp.json()));
    }
  });

  it('gives a bad line its own error line and goes on', async () => {
    writeInput([
      '{"custom_id": "broken", ',
      { method: 'POST', url: '/v1/completions', body: { prompt: 'x' } },
      chatLine('ok'),
      chatLine('ok'),
      { custom_id: 'wrong-url', method: 'POST', url: '/v1/embeddings', body: {} },
      { custom_id: 'bad-temperature', url: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 'x' }], temperature: 5 } },
      { custom_id: 'streamed', url: '/v1/completions', body: { prompt: 'x', stream: true } },
      '',
      completionLine('last'),
    ]);
    const summary = await runBatchJob(test.model, { input, output, maxInFlight: 2 });
    expect(summary).toMatchObject({ numWritten: 8, numFailed: 6 });
    const lines = readOutput(output);
    const byLine = (n: number) => lines.find((l) => l.error?.line === n);
    expect(byLine(1)).toMatchObject({ custom_id: null, response: null, error: { code: 'invalid_json' } });
    expect(byLine(2)).toMatchObject({ custom_id: null, error: { code: 'missing_custom_id' } });
    expect(byLine(4)).toMatchObject({ custom_id: null, error: { code: 'duplicate_custom_id' } });
    expect(byLine(5)).toMatchObject({ custom_id: 'wrong-url', error: { code: 'invalid_url' } });
    const byId = (id: string) => lines.find((l) => l.custom_id === id && l.response !== null);
    expect(byId('bad-temperature')?.response).toMatchObject({ status_code: 400, body: { error: { param: 'temperature' } } });
    expect(byId('streamed')?.response).toMatchObject({ status_code: 400, body: { error: { param: 'stream' } } });
    expect(byId('ok')?.response?.status_code).toBe(200);
    expect(byId('last')?.response?.status_code).toBe(200);
  });

  it('resumes: skips what the output answers, cuts a torn last line, never writes a custom_id twice', async () => {
    const requests = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? chatLine(`r${i}`) : completionLine(`r${i}`)));
    writeInput([...requests, 'not json']);
    writeFileSync(output, '');
    // An earlier run answered r0..r4 and the bad last line, then died writing r5.
    await runBatchJob(test.model, { input, output, maxInFlight: 2 });
    const first = readOutput(output);
    const keep = first.filter((l) => ['r0', 'r1', 'r2', 'r3', 'r4'].includes(l.custom_id ?? '') || l.error?.line === 13);
    writeFileSync(output, keep.map((l) => JSON.stringify(l)).join('\n') + '\n' + JSON.stringify(first[5]).slice(0, 40));
    const summary = await runBatchJob(test.model, { input, output, maxInFlight: 3 });
    expect(summary.numTornBytes).toBe(40);
    expect(summary.numSkipped).toBe(6);
    expect(summary.numWritten).toBe(7);
    const lines = readOutput(output);
    const ids = lines.filter((l) => l.custom_id !== null).map((l) => l.custom_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort()).toEqual(requests.map((r) => (r as { custom_id: string }).custom_id).sort());
    expect(lines.filter((l) => l.error?.line === 13)).toHaveLength(1);
    // Nothing left: a third run writes nothing.
    expect((await runBatchJob(test.model, { input, output, maxInFlight: 3 })).numWritten).toBe(0);
  });

  it('stops on its signal with every finished result on disk, and a rerun completes the rest', async () => {
    const requests = Array.from({ length: 30 }, (_, i) => chatLine(`s${i}`, 20));
    writeInput(requests);
    const stop = new AbortController();
    let written = 0;
    const progress = {
      update: () => {
        if (++written === 5) stop.abort();
      },
      finish: () => {},
    };
    const stopped = await runBatchJob(test.model, { input, output, maxInFlight: 4, signal: stop.signal, progress });
    expect(stopped.stoppedBy).toBe('signal');
    expect(stopped.numWritten).toBeLessThan(30);
    expect(readOutput(output)).toHaveLength(stopped.numWritten);
    expect(readOutput(output).every((l) => l.response?.status_code === 200)).toBe(true);
    const rest = await runBatchJob(test.model, { input, output, maxInFlight: 4 });
    expect(rest.numSkipped).toBe(stopped.numWritten);
    const ids = readOutput(output).map((l) => l.custom_id);
    expect(ids.sort()).toEqual(requests.map((r) => (r as { custom_id: string }).custom_id).sort());
  });

  it('keeps at most max-in-flight requests in the engine', async () => {
    writeInput(Array.from({ length: 20 }, (_, i) => chatLine(`w${i}`, 5)));
    let peak = 0;
    const stop = test.engine.observe(() => void (peak = Math.max(peak, test.engine.numInFlight)));
    await runBatchJob(test.model, { input, output, maxInFlight: 3 });
    stop();
    expect(peak).toBe(3);
  });

  it('leaves nothing listening to its stop signal once a request is done, however many lines it reads', async () => {
    writeInput(Array.from({ length: 40 }, (_, i) => chatLine(`l${i}`, 2)));
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      await runBatchJob(test.model, { input, output, maxInFlight: 2 });
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.map((w) => w.message)).toEqual([]);
  });
});

describe('JSON lines files', () => {
  it('reads lines across read-buffer boundaries, a last line without a newline marked incomplete', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-lines-'));
    try {
      const file = join(dir, 'big.jsonl');
      const long = 'x'.repeat(1_500_000);
      writeFileSync(file, `a\r\n${long}\n\nb`);
      const lines = [];
      for await (const line of readLines(file)) lines.push(line);
      expect(lines.map((l) => [l.number, l.text.length, l.complete])).toEqual([
        [1, 1, true],
        [2, long.length, true],
        [3, 0, true],
        [4, 1, false],
      ]);
      expect(await countLines(file)).toBe(4);
      appendFileSync(file, '\n');
      expect(await countLines(file)).toBe(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
