// `npm run bench:batch [-- --weights int4 --rounds 3 --concurrency 16,64 --requests 128 --model DIR --cache-dir DIR]`
import { parseArgs } from 'node:util';
import { runBatchBench } from './batch-bench.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    weights: { type: 'string', default: 'int4' },
    'cache-dir': { type: 'string' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '64' },
    requests: { type: 'string', default: '128' },
  },
});

const positive = (raw: string, flag: string): number => {
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${flag} must be a positive integer, got "${raw}"`);
  return value;
};
const weights = values.weights;
if (weights !== 'fp32' && weights !== 'int4') throw new Error(`--weights must be fp32 or int4, got "${weights}"`);

process.exitCode = await runBatchBench({
  modelDir: values.model,
  weights,
  cacheDir: values['cache-dir'],
  rounds: positive(values.rounds, '--rounds'),
  concurrency: values.concurrency.split(',').map((c) => positive(c, '--concurrency')),
  numRequests: positive(values.requests, '--requests'),
});
