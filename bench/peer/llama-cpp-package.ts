// llama.cpp for the side-by-side benchmark: node-llama-cpp (llama.cpp's prebuilt CPU binaries in
// an npm package), installed on first use into the cache directory with npm, outside the
// project's dependencies: `npm install`, `npm ci` and `npm test` never fetch it. The types below
// are the few calls the benchmark makes; the module is checked for them when it is loaded.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const NODE_LLAMA_CPP_VERSION = '3.22.1';

/** node-llama-cpp's prebuilt-binary package for this platform (CPU builds). */
function binaryPackage(): string {
  const names: Record<string, string> = {
    'linux-x64': 'linux-x64',
    'linux-arm64': 'linux-arm64',
    'darwin-arm64': 'mac-arm64-metal',
    'darwin-x64': 'mac-x64',
    'win32-x64': 'win-x64',
  };
  const name = names[`${process.platform}-${process.arch}`];
  if (name === undefined) throw new Error(`node-llama-cpp has no prebuilt binary for ${process.platform}-${process.arch}`);
  return `@node-llama-cpp/${name}`;
}

/**
 * The file URL of node-llama-cpp's entry module: under `dir` if given (an existing install),
 * else in `cacheDir`/peer, installing it there the first time (npm, about 85 MB).
 */
export function ensureNodeLlamaCpp(cacheDir: string, dir?: string): string {
  const root = dir ?? join(cacheDir, 'peer', `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}`);
  const entry = join(root, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  const manifest = join(root, 'node_modules', 'node-llama-cpp', 'package.json');
  const installed = existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version;
  if (dir !== undefined || installed === NODE_LLAMA_CPP_VERSION) {
    if (!existsSync(entry)) throw new Error(`no node-llama-cpp under ${root}`);
    return pathToFileURL(entry).href;
  }
  mkdirSync(root, { recursive: true });
  const dependencies = { 'node-llama-cpp': NODE_LLAMA_CPP_VERSION, [binaryPackage()]: NODE_LLAMA_CPP_VERSION };
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'moe-server-peer-llama-cpp', private: true, dependencies }, null, 2));
  console.log(`installing node-llama-cpp ${NODE_LLAMA_CPP_VERSION} into ${root}`);
  // --omit=optional skips the GPU builds; --ignore-scripts: the prebuilt binary needs no build step.
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['install', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new Error(`npm install of node-llama-cpp in ${root} failed (${result.status ?? result.signal})`);
  return pathToFileURL(entry).href;
}

export type KvMode = 'f32' | 'default';

export interface LlamaContextOptions {
  contextSize: number;
  batchSize: number;
  sequences: number;
  threads: { ideal: number; min: number };
  flashAttention?: boolean;
  experimentalKvCacheKeyType?: 'F32';
  experimentalKvCacheValueType?: 'F32';
}

export interface LlamaSequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<number, void, void>;
  evaluateWithMetadata(
    tokens: number[],
    metadata: { probabilities: true },
    options: { temperature: number; yieldEogToken: boolean },
  ): AsyncGenerator<{ token: number; probabilities: Map<number, number> }, void, void>;
}

export interface LlamaContext {
  contextSize: number;
  batchSize: number;
  flashAttention: boolean;
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}

export interface LlamaModel {
  createContext(options: LlamaContextOptions): Promise<LlamaContext>;
  dispose(): Promise<void>;
}

export interface Llama {
  buildType: string;
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}

interface NodeLlamaCpp {
  getLlama(options: { gpu: false; build: 'never'; logLevel: unknown; maxThreads: number }): Promise<Llama>;
  LlamaLogLevel: { error: unknown };
}

function isNodeLlamaCpp(mod: unknown): mod is NodeLlamaCpp {
  if (typeof mod !== 'object' || mod === null) return false;
  const m = mod as Record<string, unknown>;
  return typeof m.getLlama === 'function' && typeof m.LlamaLogLevel === 'object' && m.LlamaLogLevel !== null;
}

/** llama.cpp on the CPU with `threads` threads, from the module `ensureNodeLlamaCpp` returned. */
export async function loadLlama(moduleUrl: string, threads: number): Promise<Llama> {
  const mod: unknown = await import(moduleUrl);
  if (!isNodeLlamaCpp(mod)) throw new Error(`${moduleUrl} does not look like node-llama-cpp (no getLlama)`);
  return mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel.error, maxThreads: threads });
}

/** Context options: 'f32' = F32 KV cache with flash attention off (llama.cpp stays f32 throughout); 'default' = node-llama-cpp's. */
export function contextOptions(kv: KvMode, base: LlamaContextOptions): LlamaContextOptions {
  if (kv === 'default') return base;
  return { ...base, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' };
}
