// `npm run bench:ceiling -- --llama-cpp`: ONNX Runtime's matmul kernels (what moe-server runs)
// against llama.cpp's (ggml, as node-llama-cpp ships it) on the same matrix shapes, the same
// weight values, the same row counts and the same cores, rounds interleaved. fp32 MatMul
// against F32; 4-bit MatMulNBits in blocks of 32 (accuracy level 4: int8 activations, as
// bench:peer serves it) against Q4_0 (blocks of 32, repacked for AVX2, activations in Q8_0).
//
// ONNX Runtime runs as moe-server's tensor-parallel shards do: one single-threaded session per
// core, each on its own weight copies. ggml runs as llama.cpp does: one graph, its thread pool
// splitting each matmul across the cores. Both stream the same number of weight bytes per
// round (more than the caches hold), and a rate counts every core's work together.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WeightPrecision } from '../../graphs/ops/linear.ts';
import { GRAPHS, measureRates, ROUNDS, type RateShape } from '../kernel-rates.ts';
import { median, printTable } from '../table.ts';
import { ggmlMatmulBench, ggmlWeightValues, type GgmlMatmulBench, type GgmlWeightType } from './ggml-matmul.ts';
import { ensureNodeLlamaCpp } from './llama-cpp-package.ts';
import { spread } from './peer-stats.ts';
import { macsByShape, matmulMsPerToken } from './bench-model-matmuls.ts';
import type { ModelSpec } from '../../models/spec.ts';

/** Q4_0's blocks: the 4-bit side runs MatMulNBits at the same block size. */
const Q4_0_BLOCK = 32;
const GGML_TYPE: Record<WeightPrecision, GgmlWeightType> = { fp32: 'f32', int4: 'q4_0' };

export interface CompareOptions {
  cacheDir: string;
  threads: number;
  shapes: RateShape[];
  rows: number[];
  repeats: number;
}

interface Pair {
  shape: RateShape;
  precision: WeightPrecision;
  rows: number;
  /** GMAC/s per repeat, all cores together. */
  ort: number[];
  ggml: number[];
}

/**
 * Largest error allowed against the fp64 product, as a share of the largest sum of |x_i w_i|
 * (the products' scale: a sum that cancels to near 0 keeps the rounding of its terms): F32
 * rounding; Q4_0 codes (at most 1/16 of a block's largest weight) times Q8_0 activations.
 */
const TOLERANCE: Record<WeightPrecision, number> = { fp32: 1e-5, int4: 0.07 };

/** Checks ggml computes x W^T (a few rows, every 7th output) before it is timed. */
function checkProduct(bench: GgmlMatmulBench, shape: RateShape, precision: WeightPrecision): void {
  const { inFeatures: k, outFeatures: n } = shape;
  const rows = 3;
  const x = Float32Array.from({ length: rows * k }, (_, i) => Math.cos(i * 0.37));
  const y = bench.multiply(x, rows);
  const w = ggmlWeightValues(shape);
  let maxError = 0;
  let scale = 0;
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < n; o += 7) {
      let sum = 0;
      let absSum = 0;
      for (let i = 0; i < k; i++) {
        sum += x[r * k + i] * w[o * k + i];
        absSum += Math.abs(x[r * k + i] * w[o * k + i]);
      }
      maxError = Math.max(maxError, Math.abs(sum - y[r * n + o]));
      scale = Math.max(scale, absSum);
    }
  }
  if (!(maxError <= TOLERANCE[precision] * scale)) {
    throw new Error(`ggml ${precision} ${k}x${n}: error ${maxError} against products summing to ${scale} in absolute value`);
  }
}

/** What the ggml side ran (CPU variant and weight buffer type), printed once each. */
const seen = new Set<string>();

function ggmlRates(o: CompareOptions, shape: RateShape, precision: WeightPrecision): number[] {
  const copies = o.threads * GRAPHS[precision];
  const bench = ggmlMatmulBench(o.cacheDir, GGML_TYPE[precision], shape, copies, o.threads);
  try {
    checkProduct(bench, shape, precision);
    const described = `${bench.variant}, ${GGML_TYPE[precision]} weights in the ${bench.bufferType} buffer type`;
    if (!seen.has(described)) console.log(`llama.cpp kernels: ${described}`);
    seen.add(described);
    return o.rows.map((rows) => {
      const seconds = median(bench.time(rows, ROUNDS));
      return (copies * shape.inFeatures * shape.outFeatures * rows) / seconds / 1e9;
    });
  } finally {
    bench.free();
  }
}

export async function compareKernels(o: CompareOptions): Promise<Pair[]> {
  ensureNodeLlamaCpp(o.cacheDir);
  const pairs: Pair[] = [];
  for (const shape of o.shapes) {
    for (const precision of ['fp32', 'int4'] as const) {
      for (const rows of o.rows) pairs.push({ shape, precision, rows, ort: [], ggml: [] });
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'moe-kernel-compare-'));
  try {
    for (let r = 0; r < o.repeats; r++) {
      for (const shape of o.shapes) {
        for (const precision of ['fp32', 'int4'] as const) {
          const ortShape = { ...shape, int4BlockSize: Q4_0_BLOCK };
          // Alternate which engine goes first, so neither always runs on a warmer machine.
          const first = r % 2 === 0 ? 'ort' : 'ggml';
          const ggml = first === 'ggml' ? ggmlRates(o, shape, precision) : [];
          const roundDir = join(dir, `r${r}-${shape.inFeatures}x${shape.outFeatures}`);
          mkdirSync(roundDir);
          const ort = (await measureRates(precision, o.threads, roundDir, ortShape, o.rows)).map((x) => x.macsPerSecond / 1e9);
          if (first === 'ort') ggml.push(...ggmlRates(o, shape, precision));
          rmSync(roundDir, { recursive: true, force: true });
          o.rows.forEach((rows, i) => {
            const pair = pairs.find((p) => p.shape === shape && p.precision === precision && p.rows === rows)!;
            pair.ort.push(ort[i]);
            pair.ggml.push(ggml[i]);
          });
        }
      }
      console.log(`round ${r + 1}/${o.repeats} done`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return pairs;
}

export function printComparison(pairs: Pair[], threads: number): void {
  const fmt = (v: number[]) => {
    const s = spread(v);
    return `${s.median.toFixed(1)} (${s.min.toFixed(1)}-${s.max.toFixed(1)})`;
  };
  const ratio = (p: Pair) => {
    const s = spread(p.ort.map((x, i) => x / p.ggml[i]));
    return `${s.median.toFixed(2)}x (${s.min.toFixed(2)}-${s.max.toFixed(2)})`;
  };
  printTable(
    ['shape (in x out)', 'weights', 'rows', 'ONNX Runtime GMAC/s', 'llama.cpp (ggml) GMAC/s', 'ONNX Runtime / llama.cpp'],
    pairs.map((p) => [
      `${p.shape.inFeatures} x ${p.shape.outFeatures}`,
      p.precision === 'fp32' ? 'fp32 MatMul vs F32' : `int4 MatMulNBits b${Q4_0_BLOCK} vs Q4_0`,
      String(p.rows),
      fmt(p.ort),
      fmt(p.ggml),
      ratio(p),
    ]),
  );
  console.log(
    `threads: ${threads}; medians of ${ROUNDS} timed rounds per repeat, then median (min-max) over repeats; ratios paired per repeat\n`,
  );
}

const EXPERT_IN = '1024x704';
const EXPERT_OUT = '704x1024';
const LAYER = '1024x4096';

/**
 * What the rates allow the bench model if nothing but matmuls cost time: decode at the 1-row
 * rates, prefill at the 256-row rates for every matmul (routed experts see fewer rows, so
 * this flatters both engines). Needs the default shapes in the run.
 */
export function printBenchModelFloor(pairs: Pair[], spec: ModelSpec): void {
  const key = (s: RateShape) => `${s.inFeatures}x${s.outFeatures}`;
  const medianRate = (shape: string, precision: WeightPrecision, rows: number, side: 'ort' | 'ggml') => {
    const pair = pairs.find((p) => key(p.shape) === shape && p.precision === precision && p.rows === rows);
    return pair ? median(pair[side]) * 1e9 : NaN;
  };
  const macs = macsByShape(spec);
  const floor = (precision: WeightPrecision, rows: number, side: 'ort' | 'ggml') =>
    matmulMsPerToken(
      macs,
      {
        expertIn: medianRate(EXPERT_IN, precision, rows, side),
        expertOut: medianRate(EXPERT_OUT, precision, rows, side),
        rest: medianRate(LAYER, precision, rows, side),
      },
      rows > 1,
    );
  const rows: string[][] = [];
  for (const [label, precision, r] of [
    ['int4 / Q4_0 batch-1 decode', 'int4', 1],
    ['fp32 / F32 batch-1 decode', 'fp32', 1],
    ['int4 / Q4_0 prefill (256-row rates)', 'int4', 256],
    ['fp32 / F32 prefill (256-row rates)', 'fp32', 256],
  ] as const) {
    const ort = floor(precision, r, 'ort');
    const ggml = floor(precision, r, 'ggml');
    if (Number.isNaN(ort) || Number.isNaN(ggml)) continue;
    rows.push([label, ort.toFixed(2), ggml.toFixed(2), (ggml / ort).toFixed(2)]);
  }
  if (rows.length === 0) return;
  printTable(['bench model, matmuls only (ms/token)', 'ONNX Runtime', 'llama.cpp (ggml)', 'speed ONNX Runtime / llama.cpp'], rows);
  const m = (x: number) => `${(x / 1e6).toFixed(1)}M`;
  console.log(
    `MACs a token: ${m(macs.expertIn)} expert in, ${m(macs.expertOut)} expert out, ${m(macs.rest)} other (LM head ${m(macs.lmHead)}).`,
  );
  console.log('A step is never faster than its matmuls: a target against llama.cpp beyond these floors cannot be met with these kernels.');
}
