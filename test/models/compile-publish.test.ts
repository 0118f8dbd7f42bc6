// Publishing a compile into a cache that several replicas share (models/compile-publish.ts),
// and the memory that 'auto' expert placement budgets against (models/memory-limit.ts).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compileTmpDir, publishCompiled } from '../../models/compile-publish.ts';
import { usableMemoryBytes } from '../../models/memory-limit.ts';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A cache with one finished compile in a temporary directory, and where it goes. */
function finishedCompile(tag: string): { tmp: string; out: string } {
  const root = mkdtempSync(join(tmpdir(), 'moe-publish-'));
  roots.push(root);
  const out = join(root, 'compiled', 'key');
  const tmp = `${out}.tmp-${tag}`;
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'graph.onnx'), tag);
  writeFileSync(join(tmp, 'manifest.json'), '{}');
  return { tmp, out };
}

describe('publishing a compile into a shared cache', () => {
  it('names the work directory by host and pid: distinct for replicas that are each pid 1 in their container', () => {
    expect(compileTmpDir('/cache/compiled/key')).toBe(`/cache/compiled/key.tmp-${hostname()}-${process.pid}`);
  });

  it('moves a finished compile into place', () => {
    const { tmp, out } = finishedCompile('a');
    expect(publishCompiled(tmp, out, 'manifest.json')).toBe('published');
    expect(readFileSync(join(out, 'graph.onnx'), 'utf8')).toBe('a');
    expect(existsSync(tmp)).toBe(false);
  });

  it('keeps the compile another replica published first (it may be loading from it) and discards its own', () => {
    const { tmp, out } = finishedCompile('second');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'graph.onnx'), 'first');
    writeFileSync(join(out, 'manifest.json'), '{}');
    expect(publishCompiled(tmp, out, 'manifest.json')).toBe('reused');
    expect(readFileSync(join(out, 'graph.onnx'), 'utf8')).toBe('first');
    expect(readdirSync(join(out, '..'))).toEqual(['key']);
  });

  it('replaces a directory without a manifest (never a finished compile)', () => {
    const { tmp, out } = finishedCompile('new');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'graph.onnx'), 'stale');
    expect(publishCompiled(tmp, out, 'manifest.json')).toBe('published');
    expect(readFileSync(join(out, 'graph.onnx'), 'utf8')).toBe('new');
  });
});

describe('usable memory', () => {
  const GiB = 2 ** 30;
  it("is a container's memory limit when it is below the machine's memory", () => {
    expect(usableMemoryBytes(256 * GiB, 16 * GiB)).toBe(16 * GiB);
  });

  it("is the machine's memory without a limit, however Node reports none", () => {
    for (const none of [undefined, 0, 2 ** 64]) expect(usableMemoryBytes(24 * GiB, none)).toBe(24 * GiB);
  });
});
