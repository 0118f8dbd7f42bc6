// `npm run bench:teacher [-- --weights int4 --rounds 3 --top-k 64 --conversations 32 --generate 16 --generate-tokens 64
//   --model DIR --cache-dir DIR --engine-arg=--max-batch-tokens=512]`
import { parseArgs } from 'node:util';
import { runTeacherBench } from './teacher-bench.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    weights: { type: 'string', default: 'int4' },
    'cache-dir': { type: 'string' },
    rounds: { type: 'string', default: '3' },
    'top-k': { type: 'string', default: '64' },
    conversations: { type: 'string', default: '32' },
    generate: { type: 'string', default: '16' },
    'generate-tokens': { type: 'string', default: '64' },
    'engine-arg': { type: 'string', multiple: true, default: [] },
  },
});

const positive = (raw: string, flag: string): number => {
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${flag} must be a positive integer, got "${raw}"`);
  return value;
};
const weights = values.weights;
if (weights !== 'fp32' && weights !== 'int4') throw new Error(`--weights must be fp32 or int4, got "${weights}"`);
// "--engine-arg=--flag=value": the engine flag without its dashes, and its value.
const engineFlags = Object.fromEntries(values['engine-arg'].map((arg) => arg.replace(/^--/, '').split('=') as [string, string]));

process.exitCode = await runTeacherBench({
  modelDir: values.model,
  weights,
  cacheDir: values['cache-dir'],
  rounds: positive(values.rounds, '--rounds'),
  topK: positive(values['top-k'], '--top-k'),
  numConversations: positive(values.conversations, '--conversations'),
  numGenerate: positive(values.generate, '--generate'),
  generateTokens: positive(values['generate-tokens'], '--generate-tokens'),
  engineFlags,
});
