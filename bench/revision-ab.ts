// `npm run bench:ab -- --base REV`: decode speed of the working tree against another git
// revision, interleaved. Each side runs in a child process of its own with its own code (the
// base in a temporary git worktree sharing this node_modules); they take turns on blocks of
// decode steps, so a burst of another tenant's load on this shared machine slows a block of
// each side, not one side's whole run. Prints each side's median block and the ratio.
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, printTable } from './table.ts';

const CHILD = fileURLToPath(new URL('./revision-ab-child.ts', import.meta.url));
const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

interface Side {
  name: string;
  tree: string;
  child: ChildProcess;
  blocks: number[];
}

function startSide(name: string, tree: string, opts: { weights: string; batch: number; promptTokens: number }): Promise<Side> {
  const child = fork(CHILD, [tree, opts.weights, String(opts.batch), String(opts.promptTokens)], {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
  });
  return new Promise((res, rej) => {
    child.once('message', () => res({ name, tree, child, blocks: [] }));
    child.once('exit', (code) => rej(new Error(`${name}: benchmark child exited with code ${code}`)));
  });
}

function block(side: Side, steps: number): Promise<number> {
  return new Promise((res) => side.child.once('message', (ms: number) => res(ms)).send(steps));
}

/** A detached worktree of `rev` in a temporary directory, using this checkout's node_modules. */
function worktree(rev: string): { dir: string; remove(): void } {
  const dir = join(mkdtempSync(join(tmpdir(), 'moe-ab-')), 'tree');
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', '--quiet', dir, rev]);
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return {
    dir,
    remove: () => {
      execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', dir]);
      rmSync(resolve(dir, '..'), { recursive: true, force: true });
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      base: { type: 'string', default: 'HEAD' },
      weights: { type: 'string', default: 'int4' },
      batch: { type: 'string', default: '1' },
      'prompt-tokens': { type: 'string', default: '512' },
      rounds: { type: 'string', default: '15' },
      steps: { type: 'string', default: '16' },
    },
  });
  const opts = { weights: String(values.weights), batch: Number(values.batch), promptTokens: Number(values['prompt-tokens']) };
  const base = worktree(String(values.base));
  try {
    // One at a time: loading both at once would time neither, but it would double the wait.
    const sides = [await startSide(`base (${values.base})`, base.dir, opts), await startSide('working tree', ROOT, opts)];
    try {
      const rounds = Number(values.rounds);
      for (let r = 0; r < rounds; r++) {
        // Alternate which side goes first.
        for (let j = 0; j < sides.length; j++) {
          const side = sides[(r + j) % sides.length];
          side.blocks.push(await block(side, Number(values.steps)));
        }
      }
    } finally {
      // Let each side release its sessions and exit before its tree goes away.
      await Promise.all(sides.map((side) => new Promise((res) => side.child.once('exit', res).send(0))));
    }
    const [a, b] = sides.map((s) => median(s.blocks));
    console.log(
      `${opts.weights}, batch ${opts.batch}, ${opts.promptTokens}-token prompt, ${values.rounds} rounds of ${values.steps} decode ` +
        `steps per side`,
    );
    printTable(
      ['side', 'median ms/step', 'fastest block', 'slowest block', 'vs base'],
      sides.map((s, i) => [
        s.name,
        median(s.blocks).toFixed(2),
        Math.min(...s.blocks).toFixed(2),
        Math.max(...s.blocks).toFixed(2),
        `${((i === 0 ? a : b) / a).toFixed(3)}x`,
      ]),
    );
    return 0;
  } finally {
    base.remove();
  }
}

process.exitCode = await main(process.argv.slice(2));
