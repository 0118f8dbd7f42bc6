// bench:scale's serving phase: starts `moe-server serve` on the compiled model, times process
// start to /health 200, splits its resident memory, times prefill and batch-1 decode over real
// HTTP, then runs a burst of concurrent requests and checks that memory does not grow beyond
// the KV cache.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { measureMemoryBandwidth } from '../memory-bandwidth.ts';
import { timedStream, type StreamTiming } from '../stream-client.ts';
import { processMemory, sampleProcess, type ProcessMemory } from './proc-memory.ts';

const BIN = fileURLToPath(new URL('../../bin/moe-server.mjs', import.meta.url));
const MODEL = 'scale';
/** Two 128 MiB buffers a core: far beyond the caches, small beside a real-scale model's memory. */
const BANDWIDTH_BUFFER_BYTES = 128 * 1024 * 1024;

export interface ServeMeasureOptions {
  modelDir: string;
  cacheDir: string;
  kvCacheMib: number;
  promptTokens: number;
  decodeTokens: number;
  rounds: number;
  vocabSize: number;
  /** Further `serve` flags. */
  serverArgs: string[];
}

export interface ServeMeasurement {
  startToHealthySeconds: number;
  /** RSS right after /health first answered 200. */
  atReady: ProcessMemory;
  /** What the engine says opening its sessions added (MiB resolution). */
  sessionsBytes: number;
  kvCacheBytes: number;
  /** Largest RSS (and anonymous part) over the whole serving phase. */
  peakRss: number;
  peakAnon: number;
  afterLoad: ProcessMemory;
  prefillSeconds: number[];
  decodeMsPerToken: number[];
  /** Read bandwidth (bytes/s) measured right before each decode round, while the server idles: its roofline. */
  decodeBandwidth: number[];
  loadRequests: number;
  loadFailures: number;
  /** A streamed chat completion through the checkpoint's chat template: its content chunks and text. */
  chat: { chunks: number; text: string };
}

/** Distinct prompts (no shared prefix, so no cached blocks) of `length` token ids. */
function prompt(seed: number, length: number, vocabSize: number): number[] {
  return Array.from({ length }, (_, i) => 3 + ((seed * 7919 + i * 104729) % Math.min(vocabSize - 3, 30000)));
}

function check(t: StreamTiming, what: string): StreamTiming {
  if (t.error !== null || t.chunkTimes.length === 0) throw new Error(`${what} failed: ${t.error ?? 'no tokens'}`);
  return t;
}

export async function measureServing(opts: ServeMeasureOptions, log: (line: string) => void): Promise<ServeMeasurement> {
  const args = ['serve', '--port', '0', '--model', opts.modelDir, '--cache-dir', opts.cacheDir, '--served-model-name', MODEL];
  args.push('--weights', 'int4', '--kv-cache-mib', String(opts.kvCacheMib), '--max-queue', '256', ...opts.serverArgs);
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const sampler = sampleProcess(child.pid!, 200);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const line of chunk.split(/[\r\n]+/)) if (/^(ready|memory|moe-server)/.test(line)) log(`  server: ${line}`);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  try {
    const baseUrl = await healthy(
      () => stderr,
      () => exitCode,
    );
    const startToHealthySeconds = (performance.now() - started) / 1000;
    const atReady = processMemory(child.pid!)!;
    const mib = (re: RegExp): number => Number(re.exec(stderr)?.[1] ?? NaN) * 2 ** 20;
    const sessionsBytes = mib(/opening the sessions took (-?\d+) MiB/);
    const kvCacheBytes = mib(/KV cache (\d+) MiB/);

    check(await timedStream(baseUrl, MODEL, { prompt: prompt(1, 16, opts.vocabSize), maxTokens: 4 }), 'warm-up');
    const prefillSeconds: number[] = [];
    const decodeMsPerToken: number[] = [];
    const decodeBandwidth: number[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      prefillSeconds.push(await timePrefill(baseUrl, prompt(100 + r, opts.promptTokens, opts.vocabSize)));
      // This shared machine's bandwidth drifts by half from one minute to the next: each decode
      // round is read against a reading taken just before it, not one taken minutes away.
      decodeBandwidth.push((await measureMemoryBandwidth(undefined, 5, BANDWIDTH_BUFFER_BYTES)).bytesPerSecond);
      const d = check(
        await timedStream(baseUrl, MODEL, { prompt: prompt(200 + r, 8, opts.vocabSize), maxTokens: opts.decodeTokens }),
        'decode',
      );
      const times = d.chunkTimes;
      decodeMsPerToken.push((times[times.length - 1] - times[0]) / Math.max(1, d.completionTokens - 1));
      log(
        `  round ${r + 1}/${opts.rounds}: prefill ${prefillSeconds.at(-1)!.toFixed(2)} s, decode ${decodeMsPerToken.at(-1)!.toFixed(0)} ms/token, ` +
          `read bandwidth before it ${(decodeBandwidth.at(-1)! / 1e9).toFixed(1)} GB/s`,
      );
    }
    // A burst: 8 clients, prompts up to promptTokens, every request through its own prefill.
    const lengths = [opts.promptTokens, 32, opts.promptTokens / 2, 64].map((n) => Math.max(8, Math.floor(n)));
    const burst = Array.from({ length: 16 }, (_, i) => ({ prompt: prompt(300 + i, lengths[i % 4], opts.vocabSize), maxTokens: 16 }));
    let next = 0;
    let failures = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < burst.length) if ((await timedStream(baseUrl, MODEL, burst[next++])).error !== null) failures++;
      }),
    );
    const chat = await streamChat(baseUrl);
    log(`  chat: ${chat.chunks} content chunks: ${JSON.stringify(chat.text.slice(0, 60))}`);
    const afterLoad = processMemory(child.pid!)!;
    const peak = sampler.stop();
    return {
      startToHealthySeconds,
      atReady,
      sessionsBytes,
      kvCacheBytes,
      peakRss: peak.peakRss,
      peakAnon: peak.peakAnon,
      afterLoad,
      prefillSeconds,
      decodeMsPerToken,
      decodeBandwidth,
      loadRequests: burst.length,
      loadFailures: failures,
      chat,
    };
  } finally {
    sampler.stop();
    if (exitCode === undefined) child.kill('SIGTERM');
    await exited;
  }
}

/** Seconds for a one-token completion of `tokens`: the prompt's prefill (its one token comes from the prefill's logits). */
async function timePrefill(baseUrl: string, tokens: number[]): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: tokens, max_tokens: 1, temperature: 0 }),
  });
  const body = (await response.json()) as { usage?: { prompt_tokens: number } };
  if (response.status !== 200 || body.usage?.prompt_tokens !== tokens.length)
    throw new Error(`prefill failed: HTTP ${response.status} ${JSON.stringify(body)}`);
  return (performance.now() - started) / 1000;
}

/** Streams a short chat completion; counts the chunks that carried content. */
async function streamChat(baseUrl: string): Promise<{ chunks: number; text: string }> {
  const response = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hello! Who are you?' }], max_tokens: 8, stream: true }),
  });
  if (response.status !== 200) throw new Error(`chat completion: HTTP ${response.status} ${await response.text()}`);
  let chunks = 0;
  let text = '';
  const body = await response.text();
  for (const event of body.split('\n\n')) {
    if (!event.startsWith('data: {')) continue;
    const content = (JSON.parse(event.slice(6)) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content;
    if (content) {
      chunks++;
      text += content;
    }
  }
  return { chunks, text };
}

/** Polls /health until it answers 200; the base URL. */
async function healthy(stderr: () => string, exitCode: () => number | null | undefined): Promise<string> {
  for (;;) {
    if (exitCode() !== undefined) throw new Error(`the server exited (${exitCode()}) before it was ready:\n${stderr().slice(-3000)}`);
    const baseUrl = /listening on (http:\/\/\S+)/.exec(stderr())?.[1];
    if (baseUrl) {
      const status = await fetch(`${baseUrl}/health`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) return baseUrl;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
