// `npm run bench:serve [-- --weights int4 --concurrency 1,4,16,64 --requests-per-client 2
//   --min-requests 8 --model DIR --cache-dir DIR --server-arg=--max-batch-tokens=128]`
import { parseArgs } from 'node:util';
import { runServeBench } from './serve-bench.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    weights: { type: 'string', default: 'int4' },
    concurrency: { type: 'string', default: '1,4,16,64' },
    'requests-per-client': { type: 'string', default: '2' },
    'min-requests': { type: 'string', default: '8' },
    'cache-dir': { type: 'string' },
    'server-arg': { type: 'string', multiple: true, default: [] },
  },
});

const positive = (raw: string, flag: string): number => {
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${flag} must be a positive integer, got "${raw}"`);
  return value;
};
const weights = values.weights;
if (weights !== 'fp32' && weights !== 'int4') throw new Error(`--weights must be fp32 or int4, got "${weights}"`);

process.exitCode = await runServeBench({
  modelDir: values.model,
  weights,
  concurrency: values.concurrency.split(',').map((c) => positive(c, '--concurrency')),
  requestsPerClient: positive(values['requests-per-client'], '--requests-per-client'),
  minRequests: positive(values['min-requests'], '--min-requests'),
  cacheDir: values['cache-dir'],
  // "--server-arg=--flag=value" keeps the value attached; split it into "--flag value".
  serverArgs: values['server-arg'].flatMap((arg) => arg.split('=')),
});
