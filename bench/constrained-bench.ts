// `npm run bench:constrained`: does constrained decoding slow down the requests batched with
// it? One server. Each round measures the same unconstrained streams on two sides, which
// differ only in the constraint:
//   plain:       the streams decode beside companion requests that are already decoding,
//                while further requests arrive;
//   constrained: the companions decode under a JSON schema (masks every token), and the
//                arrivals bring schemas never seen before (compiled while the streams decode;
//                with a maxLength string, the slow kind to compile).
// Both sides admit the same number of sequences for the whole measurement (beside no
// companions the steps would simply be smaller, which says nothing about the constraint);
// but a constrained companion whose mask is late sits out steps, which makes the batch
// smaller, so the companions' own rate is printed too: it is what constrained requests pay.
// The sides alternate which goes first, so a burst of another tenant's load slows one round
// of each. Prints the streams' inter-token latency and throughput per side and the ratios
// constrained / plain: medians with min and max. Target: no slowdown of the streams beyond
// noise. The load average is printed as well: the machine may be shared.
//
//   npm run bench:constrained [-- --model DIR --rounds 8 --free 4 --companions 4 --arrivals 2 --tokens 48 --server-arg=--weights=fp32]
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { startServer } from './serve-process.ts';
import { type StreamTiming, timedStream } from './stream-client.ts';
import { median, printTable } from './table.ts';

interface Options {
  modelDir?: string;
  rounds: number;
  numFree: number;
  numCompanions: number;
  numArrivals: number;
  tokens: number;
  serverArgs: string[];
}

interface Side {
  /** Median over the streams of each stream's median gap between chunks (ms). */
  itlMs: number;
  /** The streams' tokens per second over the side's wall time. */
  tokensPerSecond: number;
  failed: number;
  /** The companions' chunks per second meanwhile. */
  companionRate: number;
}

const PROMPT_TOKENS = 48;

function prompt(index: number): number[] {
  return Array.from({ length: PROMPT_TOKENS }, (_, i) => 3 + ((index * 7919 + i * 104729) % 31000));
}

/** A schema of many items (the companions never finish it); `salt` makes a new text, compiled anew. */
function schema(salt: string): object {
  return {
    type: 'object',
    description: salt,
    properties: {
      items: {
        type: 'array',
        minItems: 32,
        items: {
          type: 'object',
          properties: { name: { type: 'string', maxLength: 24 }, count: { type: 'integer', minimum: 0, maximum: 999 } },
          required: ['name', 'count'],
        },
      },
    },
    required: ['items'],
  };
}

function body(model: string, index: number, maxTokens: number, schemaSalt: string | null, stream: boolean): string {
  return JSON.stringify({
    model,
    prompt: prompt(1000 + index),
    max_tokens: maxTokens,
    seed: index,
    ignore_eos: true,
    stream,
    ...(schemaSalt === null
      ? {}
      : { response_format: { type: 'json_schema', json_schema: { name: 'items', schema: schema(schemaSalt) } } }),
  });
}

/** Chunks the companions have received so far. */
interface ChunkCounter {
  count: number;
}

/** A companion stream: resolves once its first token came; counts its chunks until the signal aborts it. */
async function startCompanion(baseUrl: string, payload: string, signal: AbortSignal, counter: ChunkCounter): Promise<void> {
  const response = await fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: payload,
    signal,
  });
  if (response.status !== 200) throw new Error(`a companion failed: HTTP ${response.status}: ${await response.text()}`);
  const reader = response.body!.getReader();
  const first = await reader.read();
  if (first.done) throw new Error('a companion ended before its first token');
  void (async () => {
    try {
      const decoder = new TextDecoder();
      for (let next = await reader.read(); !next.done; next = await reader.read()) {
        counter.count += decoder.decode(next.value, { stream: true }).split('data: ').length - 1;
      }
    } catch {
      // aborted at the end of the side
    }
  })();
}

async function arrive(baseUrl: string, payload: string): Promise<void> {
  const response = await fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: payload,
  });
  if (response.status !== 200) throw new Error(`an arrival failed: HTTP ${response.status}: ${await response.text()}`);
  await response.arrayBuffer();
}

function summarize(timings: StreamTiming[], wallMs: number, companionChunks: number): Side {
  const ok = timings.filter((t) => t.error === null && t.chunkTimes.length > 1);
  const itl = ok.map((t) => median(t.chunkTimes.slice(1).map((time, i) => time - t.chunkTimes[i])));
  const tokens = ok.reduce((n, t) => n + t.completionTokens, 0);
  const seconds = wallMs / 1000;
  return {
    itlMs: median(itl),
    tokensPerSecond: tokens / seconds,
    failed: timings.length - ok.length,
    companionRate: companionChunks / seconds,
  };
}

async function runSide(baseUrl: string, model: string, options: Options, round: number, bound: boolean): Promise<Side> {
  const stop = new AbortController();
  // Companions outlast the streams; constrained ones share one schema, compiled in the warm-up.
  const companionTokens = options.tokens * 4;
  const counter: ChunkCounter = { count: 0 };
  await Promise.all(
    Array.from({ length: options.numCompanions }, (_, i) =>
      startCompanion(baseUrl, body(model, i, companionTokens, bound ? 'companion' : null, true), stop.signal, counter),
    ),
  );
  try {
    const started = performance.now();
    const countedBefore = counter.count;
    const arrivals = Array.from({ length: options.numArrivals }, (_, i) =>
      arrive(baseUrl, body(model, 100 + i, 2, bound ? `round ${round} arrival ${i}` : null, false)),
    );
    const free = Array.from({ length: options.numFree }, (_, i) =>
      timedStream(baseUrl, model, { prompt: prompt(round * 10 + i), maxTokens: options.tokens }),
    );
    const timings = await Promise.all(free);
    const side = summarize(timings, performance.now() - started, counter.count - countedBefore);
    await Promise.all(arrivals);
    return side;
  } finally {
    stop.abort();
  }
}

const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const spread = (xs: number[]): string => `median ${fmt(median(xs), 2)} (min ${fmt(Math.min(...xs), 2)}, max ${fmt(Math.max(...xs), 2)})`;

export async function runConstrainedBench(options: Options): Promise<number> {
  const args = [...(options.modelDir ? ['--model', options.modelDir] : []), ...options.serverArgs];
  const loadBefore = load();
  const server = await startServer(args);
  try {
    const models = (await (await fetch(`${server.baseUrl}/v1/models`)).json()) as { data: Array<{ id: string }> };
    const model = models.data[0].id;
    // Warm-up: sessions, the grammar worker and the companions' schema.
    await runSide(server.baseUrl, model, options, 0, true);
    await runSide(server.baseUrl, model, options, 0, false);
    const rows: string[][] = [];
    const itlRatios: number[] = [];
    const throughputRatios: number[] = [];
    const companionRatios: number[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      const boundFirst = round % 2 === 0;
      const first = await runSide(server.baseUrl, model, options, round, boundFirst);
      const second = await runSide(server.baseUrl, model, options, round, !boundFirst);
      const [plain, bound] = boundFirst ? [second, first] : [first, second];
      itlRatios.push(bound.itlMs / plain.itlMs);
      throughputRatios.push(bound.tokensPerSecond / plain.tokensPerSecond);
      companionRatios.push(bound.companionRate / plain.companionRate);
      rows.push([
        String(round),
        boundFirst ? 'constrained first' : 'plain first',
        fmt(plain.itlMs),
        fmt(bound.itlMs),
        fmt(itlRatios.at(-1)!, 2),
        fmt(plain.tokensPerSecond),
        fmt(bound.tokensPerSecond),
        fmt(plain.companionRate),
        fmt(bound.companionRate),
        String(plain.failed + bound.failed),
      ]);
      process.stderr.write(`round ${round}/${options.rounds} done\n`);
    }
    console.log(
      `\n${options.numFree} unconstrained streams of ${options.tokens} tokens beside ${options.numCompanions} decoding companions ` +
        `and ${options.numArrivals} arrivals, plain or constrained; model ${model}; Node ${process.version}`,
    );
    console.log(`load average (1, 5, 15 min): before ${loadBefore}, after ${load()}\n`);
    printTable(
      [
        'round',
        'order',
        'ITL plain ms',
        'ITL constrained ms',
        'ratio',
        'tok/s plain',
        'tok/s constrained',
        'companions tok/s plain',
        'constrained',
        'failed',
      ],
      rows,
    );
    console.log(`\nthe streams' inter-token latency, constrained / plain: ${spread(itlRatios)}`);
    console.log(`their throughput, constrained / plain: ${spread(throughputRatios)}`);
    if (options.numCompanions > 0) console.log(`the companions' tokens per second, constrained / plain: ${spread(companionRatios)}`);
    return 0;
  } finally {
    await server.stop();
  }
}

const positive = (raw: string, flag: string, min = 1): number => {
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${flag} must be an integer of at least ${min}, got "${raw}"`);
  return value;
};

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    rounds: { type: 'string', default: '8' },
    free: { type: 'string', default: '4' },
    companions: { type: 'string', default: '4' },
    arrivals: { type: 'string', default: '2' },
    tokens: { type: 'string', default: '48' },
    'server-arg': { type: 'string', multiple: true, default: [] },
  },
});

process.exitCode = await runConstrainedBench({
  modelDir: values.model,
  rounds: positive(values.rounds, '--rounds'),
  numFree: positive(values.free, '--free'),
  numCompanions: positive(values.companions, '--companions', 0),
  numArrivals: positive(values.arrivals, '--arrivals', 0),
  tokens: positive(values.tokens, '--tokens'),
  // "--server-arg=--flag=value" keeps the value attached; split it into "--flag value".
  serverArgs: values['server-arg'].flatMap((arg) => arg.split('=')),
});
