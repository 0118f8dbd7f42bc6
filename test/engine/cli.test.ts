// The `moe-server` command as a user runs it: a real child process per invocation, with its
// cache (XDG_CACHE_HOME) in a temp dir. Each spawn costs about a second, so cases are few.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticCheckpoint } from '../../models/synthetic.ts';
import { type CliResult, runCli } from '../helpers/cli.ts';
import { type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

/** Every flag each subcommand accepts (its parseArgs options), which its --help must show. */
const OPTIONS: Record<string, string[]> = {
  synthetic: ['--out', '--family', '--size', '--seed', '--dtype'],
  compile: ['--model', '--weights', '--cache-dir'],
  generate: [
    '--model',
    '--prompt',
    '--max-tokens',
    '--weights',
    '--temperature',
    '--top-k',
    '--top-p',
    '--seed',
    '--threads',
    '--cache-dir',
  ],
  bench: ['--model', '--weights', '--prompt-tokens', '--decode-tokens', '--cache-dir'],
};

describe('moe-server CLI', () => {
  let root: string;
  let env: Record<string, string>;
  let model: TinyModel;
  const cli = (...args: string[]): Promise<CliResult> => runCli(args, env);

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'moe-cli-'));
    env = { XDG_CACHE_HOME: join(root, 'xdg') };
    model = writeTinyModel({}, 5);
  });
  afterAll(() => {
    model?.remove();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('--help at the top level and for each subcommand exits 0 and lists every option', async () => {
    const names = Object.keys(OPTIONS);
    const [top, ...subs] = await Promise.all([cli('--help'), ...names.map((name) => cli(name, '--help'))]);
    expect(top.code).toBe(0);
    for (const name of names) expect(top.stdout).toContain(name);
    subs.forEach((result, i) => {
      expect({ command: names[i], code: result.code }).toEqual({ command: names[i], code: 0 });
      const missing = OPTIONS[names[i]].filter((flag) => !result.stdout.includes(flag));
      expect({ command: names[i], missing }).toEqual({ command: names[i], missing: [] });
    });
  });

  it('exits 2 with a message for an unknown flag or command', async () => {
    const [flag, command] = await Promise.all([cli('compile', '--bogus'), cli('frobnicate')]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/unknown option '--bogus'/i);
    expect(flag.stderr).toContain('Usage: moe-server compile');
    expect(command.code).toBe(2);
    expect(command.stderr).toContain('unknown command "frobnicate"');
  });

  it('synthetic writes the checkpoint files, the same bytes as the writer with those options', async () => {
    const out = join(root, 'synthetic');
    const result = await cli('synthetic', '--out', out, '--size', 'tiny', '--seed', '3');
    expect(result.code).toBe(0);
    for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      expect(existsSync(join(out, file))).toBe(true);
    }
    const direct = join(root, 'direct');
    writeSyntheticCheckpoint({ outDir: direct, size: 'tiny', seed: 3 });
    expect(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(direct, 'model.safetensors')))).toBe(true);
    expect(readFileSync(join(out, 'config.json'), 'utf8')).toBe(readFileSync(join(direct, 'config.json'), 'utf8'));
  });

  it('compile prints compiled the first time and reused the second', async () => {
    const cacheDir = join(root, 'compile-cache');
    const first = await cli('compile', '--model', model.dir, '--weights', 'fp32', '--cache-dir', cacheDir);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^compiled /m);
    const second = await cli('compile', '--model', model.dir, '--weights', 'fp32', '--cache-dir', cacheDir);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^reused /m);
    const dir = (line: string) => line.trim().split(' ').at(-1);
    expect(dir(second.stdout)).toBe(dir(first.stdout));
  });

  it('generate prints the prompt, the generated text and prefill and decode speeds', async () => {
    const result = await cli('generate', '--model', model.dir, '--prompt', 'Hello', '--max-tokens', '8', '--weights', 'int4');
    expect(result.code).toBe(0);
    expect(result.stdout.startsWith('Hello')).toBe(true);
    const text = result.stdout.slice('Hello'.length).split('\n\n')[0];
    expect(text.length).toBeGreaterThan(0);
    expect(result.stdout).toMatch(/generated [1-8] \(finish: (length|stop)\)/);
    expect(result.stdout).toMatch(/prefill \d+(\.\d+)? tok\/s, decode \d+(\.\d+)? tok\/s \(int4 weights\)/);
    // Without --cache-dir the compiled graphs go under XDG_CACHE_HOME, never the user's cache.
    expect(existsSync(join(env.XDG_CACHE_HOME, 'moe-server', 'compiled'))).toBe(true);
  });
});
