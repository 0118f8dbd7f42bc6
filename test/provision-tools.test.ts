// npm test's first step (test/provision-tools.ts): quiet when the tools are there; one line
// naming what is missing and how to get it when it cannot install them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SCRIPT = new URL('./provision-tools.ts', import.meta.url).pathname;

function provision(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('npm test provisioning its integration tests', () => {
  it('does nothing and says nothing when chromium, prometheus and promtool are there', () => {
    expect(provision({})).toEqual({ status: 0, stdout: '', stderr: '' });
  });

  it('fails with one line naming the missing program and how to get it when it cannot install', () => {
    // An empty PATH: no apt-get (nor sudo) to install with.
    const emptyPath = mkdtempSync(join(tmpdir(), 'moe-no-apt-'));
    try {
      const result = provision({ PATH: emptyPath, MOE_TEST_CHROMIUM: join(emptyPath, 'chromium') });
      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`chromium (${join(emptyPath, 'chromium')})`);
      expect(lines[0]).toContain('apt-get install chromium');
      expect(lines[0]).toContain('MOE_TEST_CHROMIUM');
      expect(lines[0]).not.toContain('prometheus');
    } finally {
      rmSync(emptyPath, { recursive: true, force: true });
    }
  });
});
