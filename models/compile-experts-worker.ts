// A compile worker thread: takes (layer, expert) jobs from the shared counter until none is
// left (compile-experts.ts runExpertJobs), writing each expert's graphs; a failure is recorded
// for the calling thread, which throws it.
import { workerData } from 'node:worker_threads';
import { CTRL, type ExpertWorkerData, openExpertWriter, recordFailure, writeExpertGraphs } from './compile-experts.ts';

const { settings, buffers } = workerData as ExpertWorkerData;
const ctrl = new Int32Array(buffers.ctrl);
const jobs = new Int32Array(buffers.jobs);
const numJobs = jobs.length / 2;

try {
  const writer = openExpertWriter(settings);
  try {
    while (Atomics.load(ctrl, CTRL.failed) === 0 && Atomics.load(ctrl, CTRL.cancel) === 0) {
      const i = Atomics.add(ctrl, CTRL.next, 1);
      if (i >= numJobs) break;
      const written = writeExpertGraphs(writer, { layer: jobs[2 * i], expert: jobs[2 * i + 1] });
      Atomics.add(ctrl, CTRL.done, written);
      Atomics.notify(ctrl, CTRL.done);
    }
  } finally {
    writer.close();
  }
} catch (err) {
  recordFailure(buffers, err);
}
