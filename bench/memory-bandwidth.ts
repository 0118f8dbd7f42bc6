// Measures the machine's memory bandwidth the way STREAM's triad does (a[i] = b[i] + s*c[i],
// 24 bytes moved per element), on one worker thread per core, each on arrays far larger
// than any cache. The decode roofline divides this by the weight bytes a token must read.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const TRIAD_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const n = workerData.elements;
const a = new Float64Array(n), b = new Float64Array(n).fill(1), c = new Float64Array(n).fill(2);
const triad = () => { for (let i = 0; i < n; i++) a[i] = b[i] + 3 * c[i]; };
triad(); // touch every page and let the JIT compile the loop before timing
parentPort.on('message', (rounds) => {
  const times = [];
  for (let r = 0; r < rounds; r++) { const t = process.hrtime.bigint(); triad(); times.push(Number(process.hrtime.bigint() - t) / 1e9); }
  parentPort.postMessage(times);
});
parentPort.postMessage('ready');
`;

export interface BandwidthResult {
  /** Bytes per second, median over rounds, all threads together. */
  bytesPerSecond: number;
  threads: number;
  rounds: number;
}

export async function measureMemoryBandwidth(threads = availableParallelism(), rounds = 15, bytesPerThread = 384 * 1024 * 1024): Promise<BandwidthResult> {
  const elements = Math.floor(bytesPerThread / 24);
  const workers = Array.from({ length: threads }, () => new Worker(TRIAD_WORKER, { eval: true, workerData: { elements } }));
  try {
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
    // All threads run their rounds at the same time, as a decode step loads every core.
    const perThread = await Promise.all(
      workers.map(
        (w) =>
          new Promise<number[]>((resolve) => {
            w.once('message', resolve);
            w.postMessage(rounds);
          }),
      ),
    );
    const perRound = Array.from({ length: rounds }, (_, r) => Math.max(...perThread.map((times) => times[r])));
    const sorted = perRound.slice(1).sort((x, y) => x - y); // round 0 may start unevenly
    const median = sorted[Math.floor(sorted.length / 2)];
    return { bytesPerSecond: (threads * elements * 24) / median, threads, rounds };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
