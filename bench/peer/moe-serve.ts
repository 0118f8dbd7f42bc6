// moe-server's side of the serving comparison: `moe-server serve` as a child process, driven
// over real HTTP by streaming clients with the bench:serve mix (bench/stream-client.ts), then
// the server process's peak resident memory, read from the kernel before it is stopped.
import { readFileSync } from 'node:fs';
import { startServer } from '../serve-process.ts';
import { timedStream } from '../stream-client.ts';
import { int4BlockServeArgs } from './int4-blocks.ts';
import { type LevelSummary, type RequestTiming, runMixLevel } from './serve-mix.ts';

export interface MoeServeOptions {
  modelDir: string;
  cacheDir: string;
  /** KV cache capacity in tokens, across all sequences: the same as llama.cpp's context. */
  kvCacheTokens: number;
  levels: Array<{ concurrency: number; requests: number }>;
  vocabSize: number;
  serverArgs: string[];
}

export interface MoeServeResult {
  levels: LevelSummary[];
  peakRssMib: number;
}

/** VmHWM (peak resident set) of a process, in MiB. */
export function peakRssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmHWM:\s+(\d+)/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmHWM for process ${pid}`);
  return Number(kb) / 1024;
}

export async function runMoeServe(opts: MoeServeOptions): Promise<MoeServeResult> {
  const args = ['--model', opts.modelDir, '--weights', 'int4', ...int4BlockServeArgs(), '--cache-dir', opts.cacheDir];
  args.push('--served-model-name', 'bench');
  args.push('--max-queue', '1024', '--kv-cache-tokens', String(opts.kvCacheTokens), ...opts.serverArgs);
  const server = await startServer(args);
  try {
    const send = async (request: { prompt: number[]; maxTokens: number }): Promise<RequestTiming> => {
      const t = await timedStream(server.baseUrl, 'bench', request);
      return { sentAt: t.sentAt, tokenTimes: t.chunkTimes, outputTokens: t.completionTokens, error: t.error };
    };
    await send({ prompt: [3, 4, 5], maxTokens: 4 }); // warm-up, as bench:serve
    const levels: LevelSummary[] = [];
    for (const level of opts.levels) levels.push(await runMixLevel(level.concurrency, level.requests, opts.vocabSize, send));
    const pid = server.child.pid;
    if (pid === undefined) throw new Error('the server process has no pid');
    return { levels, peakRssMib: peakRssOf(pid) };
  } finally {
    const code = await server.stop();
    if (code !== 0) console.error(`moe-server serve exited with code ${code}`);
  }
}
