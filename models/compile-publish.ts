// Where a compile is written and how it is put into the cache, which several processes may
// share: replicas on one volume, each of them possibly pid 1 in its own container.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * Beside the final directory, named by host and pid: distinct for replicas sharing the cache
 * (a pod's hostname is its name), and the same for a restarted container, whose next attempt
 * clears what a crash left.
 */
export function compileTmpDir(outDir: string): string {
  return `${outDir}.tmp-${hostname()}-${process.pid}`;
}

/**
 * Moves a finished compile (`tmpDir`, holding `manifestFile`) to `outDir`. When another
 * process published the same key first, its directory stays (it may be loading from it) and
 * this one is discarded: 'reused'.
 */
export function publishCompiled(tmpDir: string, outDir: string, manifestFile: string): 'published' | 'reused' {
  const published = (): boolean => existsSync(join(outDir, manifestFile));
  const discard = (): 'reused' => {
    rmSync(tmpDir, { recursive: true, force: true });
    return 'reused';
  };
  if (published()) return discard();
  // Only a finished compile is ever renamed into place: a directory without its manifest
  // is left from something else (an older version) and goes.
  rmSync(outDir, { recursive: true, force: true });
  try {
    renameSync(tmpDir, outDir);
    return 'published';
  } catch (err) {
    if (published()) return discard(); // another process renamed between the check and here
    throw err;
  }
}
