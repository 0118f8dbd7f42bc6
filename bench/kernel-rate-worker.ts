// One core's part of the kernel-rate benchmark (kernel-ceiling.ts): builds `graphs` copies of
// one linear layer (the model's own fp32 MatMul or 4-bit MatMulNBits builder, so the same ONNX
// Runtime kernels as a decode step) and, when asked, runs all of them in turn for `rounds`
// rounds at M rows. More copies than fit in cache, so weights stream from memory as in a step.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { GraphBuilder } from '../graphs/onnx/graph-builder.ts';
import { WeightsFileWriter } from '../graphs/onnx/weights-file.ts';
import { linear, type WeightPrecision } from '../graphs/ops/linear.ts';
import { GraphSession, ort } from '../kernels/session.ts';

export interface KernelRateWorkerData {
  precision: WeightPrecision;
  inFeatures: number;
  outFeatures: number;
  graphs: number;
  /** MatMulNBits block size; the model's default when absent. */
  int4BlockSize?: number;
  /** Where the graphs are written (the caller removes it). */
  dir: string;
}

export interface KernelRateJob {
  rows: number;
  rounds: number;
}

const { precision, inFeatures, outFeatures, graphs, int4BlockSize, dir } = workerData as KernelRateWorkerData;
const weights = new Float32Array(inFeatures * outFeatures);
for (let i = 0; i < weights.length; i++) weights[i] = Math.sin(i * 12.9898) * 0.05;
const sessions = Array.from({ length: graphs }, (_, g) => {
  const file = join(dir, `linear${g}.onnx`);
  const writer = new WeightsFileWriter(`${file}.data`);
  const b = new GraphBuilder('linear', writer);
  const x = b.input('x', 'float32', ['M', inFeatures]);
  b.output(
    linear(b, x, { data: weights, outFeatures, inFeatures }, 'w', { precision, int4AccuracyLevel: 4, int4BlockSize }),
    'y',
    'float32',
    ['M', outFeatures],
  );
  writeFileSync(file, b.toBytes());
  writer.close();
  return new GraphSession(file, { provider: 'cpu', intraOpThreads: 1 });
});

parentPort?.on('message', ({ rows, rounds }: KernelRateJob) => {
  const x = new ort.Tensor('float32', new Float32Array(rows * inFeatures).fill(0.01), [rows, inFeatures]);
  for (const s of sessions) s.run({ x }); // warm-up: prepacking, first-touch
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    for (const s of sessions) s.run({ x });
    times.push((performance.now() - started) / 1000);
  }
  parentPort?.postMessage(times);
});
parentPort?.postMessage('ready');
