// Measures the machine's memory read bandwidth: the roofline of decode, which streams every
// active weight once per token and writes almost nothing. Each thread (one per core, all at
// once) compares two equal buffers far larger than any cache with Buffer.compare, which runs
// libc's vectorised memcmp and so reads at the speed native code reads. (A JavaScript STREAM
// triad loop is not vectorised and read 18-30 GB/s here where memcmp reads 28: it would make
// every roofline fraction look better than it is.)
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const READER = `
const { parentPort, workerData } = require('node:worker_threads');
const a = Buffer.alloc(workerData.bytes, 7);
const b = Buffer.alloc(workerData.bytes, 7);
a.compare(b); // touch every page before timing
parentPort.on('message', (rounds) => {
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const t = process.hrtime.bigint();
    if (a.compare(b) !== 0) throw new Error('buffers differ');
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  parentPort.postMessage(times);
});
parentPort.postMessage('ready');
`;

export interface BandwidthResult {
  /** Bytes read per second, median over rounds, all threads together. */
  bytesPerSecond: number;
  threads: number;
  rounds: number;
}

export async function measureMemoryBandwidth(
  threads = availableParallelism(),
  rounds = 9,
  bytesPerBuffer = 256 * 1024 * 1024,
): Promise<BandwidthResult> {
  const workers = Array.from({ length: threads }, () => new Worker(READER, { eval: true, workerData: { bytes: bytesPerBuffer } }));
  try {
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
    // All threads read at the same time, as a decode step loads every core.
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
    return { bytesPerSecond: (threads * 2 * bytesPerBuffer) / median, threads, rounds };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
