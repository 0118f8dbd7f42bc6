// llama.cpp for the side-by-side benchmark: node-llama-cpp (llama.cpp's prebuilt CPU binaries in
// an npm package), installed on first use into the cache directory (cached-install.ts). The
// types below are the few calls the benchmark makes; the module is checked for them when it is
// loaded.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureCachedPackages } from './cached-install.ts';

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
  const root = dir ?? nodeLlamaCppRoot(cacheDir);
  // --omit=optional skips the GPU builds; the prebuilt CPU binary needs no build step.
  if (dir === undefined)
    ensureCachedPackages(
      root,
      { 'node-llama-cpp': NODE_LLAMA_CPP_VERSION, [binaryPackage()]: NODE_LLAMA_CPP_VERSION },
      { omitOptional: true },
    );
  const entry = join(root, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  if (!existsSync(entry)) throw new Error(`no node-llama-cpp under ${root}`);
  return pathToFileURL(entry).href;
}

export function nodeLlamaCppRoot(cacheDir: string): string {
  return join(cacheDir, 'peer', `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}`);
}

/** The folder of node-llama-cpp's prebuilt llama.cpp libraries for this platform (ggml's among them). */
export function llamaCppBinaries(root: string): string {
  return join(root, 'node_modules', binaryPackage(), 'bins', binaryPackage().slice('@node-llama-cpp/'.length));
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
