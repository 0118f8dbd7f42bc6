// `npm run bench:ceiling`: how fast ONNX Runtime's matmul kernels run on this machine, and the
// speeds they allow the model at best. One linear layer shape (hidden 1024 -> 4096) is timed
// on every core at once (a thread each, like the tensor-parallel shards), for fp32 weights
// (MatMul) and 4-bit weights (MatMulNBits, accuracy level 4), at the row counts a step sees:
// 1 (batch-1 decode), 2 (a routed expert at batch 16), 16 (a batch-16 decode step's dense
// parts) and 256 (a prefill chunk). The read bandwidth is measured in the same run.
//
// The ceilings assume everything that is not a matmul costs nothing (attention, gating,
// norms, thread hand-offs) and that every matmul of a kind runs at the rate measured here:
// no real step can beat them, so a target above a ceiling cannot be met on this machine
// with these kernels.
//
// `--llama-cpp` instead times ONNX Runtime's kernels against llama.cpp's on the same shapes
// (bench/peer/kernel-compare.ts): `--shape 1024x4096` (repeatable; default: this layer and the
// bench model's routed expert, 1024x704 and 704x1024), `--repeats 3`.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { WeightPrecision } from '../graphs/ops/linear.ts';
import { defaultCacheDir } from '../models/compile.ts';
import { loadModelSpec } from '../models/registry.ts';
import { activeParametersPerToken, activeWeightBytesPerToken } from './active-bytes.ts';
import { ensureBenchModel } from './bench-model.ts';
import { measureMemoryBandwidth } from './memory-bandwidth.ts';
import { CEILING_SHAPE, measureRates, ROWS, type RateShape } from './kernel-rates.ts';
import { compareKernels, printBenchModelFloor, printComparison } from './peer/kernel-compare.ts';
import { MIX_OUTPUT_LENGTHS, MIX_PROMPT_LENGTHS } from './serve-bench.ts';
import { printTable } from './table.ts';

/** bench:serve's request mix, averaged. */
const average = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / values.length;
const MIX_PROMPT_TOKENS = average(MIX_PROMPT_LENGTHS);
const MIX_OUTPUT_TOKENS = average(MIX_OUTPUT_LENGTHS);

const BENCH_EXPERT_SHAPES: RateShape[] = [
  { inFeatures: 1024, outFeatures: 704 },
  { inFeatures: 704, outFeatures: 1024 },
];

function parseShape(text: string): RateShape {
  const m = /^(\d+)x(\d+)$/.exec(text);
  if (!m) throw new Error(`--shape takes IN x OUT features, like 1024x4096 (got ${text})`);
  return { inFeatures: Number(m[1]), outFeatures: Number(m[2]) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'llama-cpp': { type: 'boolean', default: false },
      shape: { type: 'string', multiple: true, default: [] },
      repeats: { type: 'string', default: '3' },
    },
  });
  const threads = Math.min(2, availableParallelism());
  if (values['llama-cpp']) {
    const shapes = values.shape.length > 0 ? values.shape.map(parseShape) : [CEILING_SHAPE, ...BENCH_EXPERT_SHAPES];
    const pairs = await compareKernels({ cacheDir: defaultCacheDir(), threads, shapes, rows: ROWS, repeats: Number(values.repeats) });
    printComparison(pairs, threads);
    printBenchModelFloor(pairs, loadModelSpec(ensureBenchModel(defaultCacheDir())).spec);
    return;
  }
  const spec = loadModelSpec(ensureBenchModel(defaultCacheDir())).spec;
  const dir = mkdtempSync(join(tmpdir(), 'moe-kernel-ceiling-'));
  try {
    const rates = [...(await measureRates('fp32', threads, dir)), ...(await measureRates('int4', threads, dir))];
    const bandwidth = (await measureMemoryBandwidth(threads)).bytesPerSecond;
    printTable(
      ['weights', 'rows', 'GMAC/s (all threads)', 'weight GB/s'],
      rates.map((r) => [r.precision, String(r.rows), (r.macsPerSecond / 1e9).toFixed(1), (r.bytesPerSecond / 1e9).toFixed(1)]),
    );
    console.log(`threads: ${threads}; read bandwidth (memcmp, same run): ${(bandwidth / 1e9).toFixed(1)} GB/s\n`);

    const rate = (precision: WeightPrecision, rows: number) => rates.find((r) => r.precision === precision && r.rows === rows)!;
    const { quantisable, router } = activeParametersPerToken(spec);
    const macsPerToken = quantisable + router;
    const lmHeadMacs = spec.vocabSize * spec.hiddenSize;
    const fp32Bytes = activeWeightBytesPerToken(spec, 'fp32');
    const best = (rows: number) => Math.max(rate('fp32', rows).macsPerSecond, rate('int4', rows).macsPerSecond);
    // Decode at batch 16: all matmuls at the 16-row rate (routed experts see ~2 rows: slower).
    const batch16StepMs = ((16 * macsPerToken) / best(16)) * 1000;
    // One request of the load mix: its prompt at the prefill rate (no LM head but the last row),
    // its output at the batch-16 decode rate.
    const requestSeconds = (MIX_PROMPT_TOKENS * (macsPerToken - lmHeadMacs)) / best(256) + (MIX_OUTPUT_TOKENS * macsPerToken) / best(16);
    printTable(
      ['ceiling (bench model, matmuls only, at the rates above)', 'value'],
      [
        [
          'fp32 batch-1 decode: % of the read-bandwidth roofline',
          `${((100 * rate('fp32', 1).bytesPerSecond) / bandwidth).toFixed(0)}% ` +
            `(${((fp32Bytes / rate('fp32', 1).bytesPerSecond) * 1000).toFixed(1)} ms/token)`,
        ],
        ['int4 batch-1 decode: ms/token', ((macsPerToken / rate('int4', 1).macsPerSecond) * 1000).toFixed(1)],
        ['batch-16 decode step: ms (= inter-token latency at 16 streams)', batch16StepMs.toFixed(1)],
        [
          `load mix (${MIX_PROMPT_TOKENS}-token prompts, ${MIX_OUTPUT_TOKENS.toFixed(1)}-token outputs): output tok/s`,
          (MIX_OUTPUT_TOKENS / requestSeconds).toFixed(0),
        ],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// bench:scale imports measureRates; only `npm run bench:ceiling` runs the table.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
