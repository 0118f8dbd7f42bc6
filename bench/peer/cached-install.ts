// Packages the benchmarks against llama.cpp need and the project does not (node-llama-cpp, and
// an FFI library to call its ggml kernels), installed on first use into a folder of the cache
// directory with npm, outside the project's dependencies: `npm install`, `npm ci` and
// `npm test` never fetch them.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Makes sure `root`/node_modules holds `dependencies` at exactly the versions given (npm
 * install into `root` the first time, or when a version differs). `omitOptional` skips
 * optional dependencies (node-llama-cpp's GPU builds); install scripts never run.
 */
export function ensureCachedPackages(root: string, dependencies: Record<string, string>, options: { omitOptional: boolean }): void {
  const installed = Object.entries(dependencies).every(([name, version]) => {
    const manifest = join(root, 'node_modules', name, 'package.json');
    return existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version === version;
  });
  if (installed) return;
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'moe-server-bench-peer', private: true, dependencies }, null, 2));
  console.log(`installing ${Object.keys(dependencies).join(', ')} into ${root}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = ['install', '--ignore-scripts', '--no-audit', '--no-fund', ...(options.omitOptional ? ['--omit=optional'] : [])];
  const result = spawnSync(npm, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`npm install in ${root} failed (${result.status ?? result.signal})`);
}
