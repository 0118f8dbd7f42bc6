// `npm run bench:peer [-- --model DIR --rounds 5 --weights fp32,int4 --prompt-tokens 512 --decode-tokens 64
//   --llama-kv f32,default --serve-kv f32 --concurrency 1,16 --requests-per-client 2 --min-requests 8
//   --guard-tokens 8 --cache-dir DIR --llama-cpp-dir DIR --force --server-arg=--max-batch-tokens=128]`
// --concurrency none skips the serving runs; --rounds 0 runs the correctness guard alone.
import { parseArgs } from 'node:util';
import type { WeightPrecision } from '../../graphs/ops/linear.ts';
import type { KvMode } from './llama-cpp-package.ts';
import { UnsupportedForLlamaCpp } from '../gguf/llama-arch.ts';
import { type PeerBenchOptions, runPeerBench } from './peer-bench.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    weights: { type: 'string', default: 'fp32,int4' },
    'prompt-tokens': { type: 'string', default: '512' },
    'decode-tokens': { type: 'string', default: '64' },
    'llama-kv': { type: 'string', default: 'f32,default' },
    'serve-kv': { type: 'string', default: 'f32' },
    concurrency: { type: 'string', default: '1,16' },
    'requests-per-client': { type: 'string', default: '2' },
    'min-requests': { type: 'string', default: '8' },
    'guard-tokens': { type: 'string', default: '8' },
    'cache-dir': { type: 'string' },
    'llama-cpp-dir': { type: 'string' },
    force: { type: 'boolean', default: false },
    'server-arg': { type: 'string', multiple: true, default: [] },
  },
});

const positive = (raw: string, flag: string): number => {
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${flag} must be a positive integer, got "${raw}"`);
  return value;
};
const nonNegative = (raw: string, flag: string): number => (raw === '0' ? 0 : positive(raw, flag));
const listOf = <T extends string>(raw: string, allowed: readonly T[], flag: string): T[] =>
  raw.split(',').map((v) => {
    if (!(allowed as readonly string[]).includes(v)) throw new Error(`${flag}: "${v}" is not one of ${allowed.join(', ')}`);
    return v as T;
  });

const options: PeerBenchOptions = {
  modelDir: values.model,
  cacheDir: values['cache-dir'],
  llamaCppDir: values['llama-cpp-dir'],
  rounds: nonNegative(values.rounds, '--rounds'),
  weights: listOf<WeightPrecision>(values.weights, ['fp32', 'int4'], '--weights'),
  promptTokens: positive(values['prompt-tokens'], '--prompt-tokens'),
  decodeTokens: positive(values['decode-tokens'], '--decode-tokens'),
  llamaKv: listOf<KvMode>(values['llama-kv'], ['f32', 'default'], '--llama-kv'),
  serveKv: listOf<KvMode>(values['serve-kv'], ['f32', 'default'], '--serve-kv')[0],
  concurrency: values.concurrency === 'none' ? [] : values.concurrency.split(',').map((c) => positive(c, '--concurrency')),
  requestsPerClient: positive(values['requests-per-client'], '--requests-per-client'),
  minRequests: positive(values['min-requests'], '--min-requests'),
  guardTokens: positive(values['guard-tokens'], '--guard-tokens'),
  force: values.force,
  // "--server-arg=--flag=value" keeps the value attached; split it into "--flag value".
  serverArgs: values['server-arg'].flatMap((arg) => arg.split('=')),
};

try {
  process.exitCode = await runPeerBench(options);
} catch (err) {
  if (!(err instanceof UnsupportedForLlamaCpp)) throw err;
  console.error(`bench:peer: this model cannot be compared: ${err.message}`);
  process.exitCode = 2;
}
