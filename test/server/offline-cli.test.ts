// `moe-server batch` and `moe-server distill` as a user runs them: the real executable on the
// tiny model, a Ctrl-C in the middle of a batch job, then the same command again to finish it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';
import { waitFor } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/moe-server.mjs', import.meta.url));

interface OutputLine {
  custom_id: string;
  response: { status_code: number; body: { choices: Array<{ text?: string }>; usage: { completion_tokens: number } } } | null;
}

function outputLines(file: string): OutputLine[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as OutputLine);
}

describe('moe-server batch and distill', () => {
  let root: string;
  let model: TinyModel;
  let engineFlags: string[];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'moe-batch-cli-'));
    model = writeTinyModel({}, 9);
    engineFlags = ['--model', model.dir, '--cache-dir', model.cacheDir, '--weights', 'fp32', '--threads', '1', '--tensor-parallel', '1'];
  });
  afterAll(() => {
    model?.remove();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('--help lists the job flags and the engine settings', async () => {
    const result = await runCli(['batch', '--help']);
    expect(result.code).toBe(0);
    for (const flag of [
      '--input',
      '--output',
      '--max-in-flight',
      '--model',
      '--weights',
      '--max-num-seqs',
      '--kv-cache-mib',
      '--threads',
    ]) {
      expect(result.stdout).toContain(flag);
    }
  });

  it('stops cleanly on Ctrl-C with every finished result on disk; the same command finishes the job', async () => {
    const input = join(root, 'requests.jsonl');
    const output = join(root, 'results.jsonl');
    const ids = Array.from({ length: 24 }, (_, i) => `q${i}`);
    const lines = ids.map((id, i) => ({
      custom_id: id,
      method: 'POST',
      url: i % 2 === 0 ? '/v1/chat/completions' : '/v1/completions',
      body:
        i % 2 === 0
          ? { messages: [{ role: 'user', content: `Tell me about ${id}` }], max_tokens: 48, ignore_eos: true }
          : { prompt: `Once ${id}`, max_tokens: 48, ignore_eos: true },
    }));
    writeFileSync(input, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const args = [BIN, 'batch', '--input', input, '--output', output, '--max-num-seqs', '4', '--max-in-flight', '4', ...engineFlags];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(() => outputLines(output).length >= 2, 120_000);
    child.kill('SIGINT');
    expect(await exited, stderr).toBe(130);
    const stopped = outputLines(output);
    expect(readFileSync(output, 'utf8').endsWith('\n')).toBe(true);
    expect(stopped.length).toBeLessThan(ids.length);
    expect(stopped.every((l) => l.response?.status_code === 200 && l.response.body.usage.completion_tokens === 48)).toBe(true);
    expect(stderr).toMatch(/SIGINT: stopping/);

    const rest = await runCli(['batch', '--input', input, '--output', output, ...engineFlags]);
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.stderr).toMatch(new RegExp(`${stopped.length} already in`));
    expect(rest.stderr).toMatch(/batch: \d+\/24 lines \(100%\), [\d.]+ lines\/s/);
    const all = outputLines(output);
    expect(all.map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    expect(all.every((l) => l.response?.status_code === 200)).toBe(true);
  }, 300_000);

  it('distill writes shards and a manifest, and its --help lists its flags', async () => {
    const help = await runCli(['distill', '--help']);
    expect(help.code).toBe(0);
    for (const flag of [
      '--input',
      '--out',
      '--top-k',
      '--temperature',
      '--router',
      '--generate',
      '--gen-max-tokens',
      '--shard-mib',
      '--max-num-seqs',
    ]) {
      expect(help.stdout).toContain(flag);
    }
    const input = join(root, 'conversations.jsonl');
    const out = join(root, 'export');
    const conversation = (id: string) => ({
      id,
      messages: [
        { role: 'user', content: `Hi ${id}` },
        { role: 'assistant', content: `Hello ${id}!` },
      ],
    });
    writeFileSync(input, [conversation('a'), conversation('b')].map((c) => JSON.stringify(c)).join('\n') + '\n');
    const result = await runCli(['distill', '--input', input, '--out', out, '--top-k', '16', '--router', ...engineFlags]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/distill: 2 conversations scored/);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as {
      top_k: number;
      counts: { sequences: number };
      shards: unknown[];
    };
    expect(manifest).toMatchObject({ top_k: 16, counts: { sequences: 2 } });
    expect(manifest.shards).toHaveLength(1);
    const again = await runCli(['distill', '--input', input, '--out', out, '--top-k', '16', '--router', ...engineFlags]);
    expect(again.stderr).toMatch(/0 conversations scored.*2 already done/);
    const other = await runCli(['distill', '--input', input, '--out', out, '--top-k', '8', ...engineFlags]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/other settings \(top_k\)/);
  }, 300_000);
});
