// Starts bench/offline-run.ts in a child process and waits for its result.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { OfflineRunRequest, OfflineRunResult } from './offline-run.ts';

const CHILD_ENTRY = fileURLToPath(new URL('../runtime/worker-bootstrap.mjs', import.meta.url));

export function runOfflineInChild(req: OfflineRunRequest): Promise<OfflineRunResult> {
  const child = fork(CHILD_ENTRY, [new URL('./offline-run.ts', import.meta.url).href], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (result: OfflineRunResult) => resolve(result));
    child.once('exit', (code) => reject(new Error(`benchmark child exited with code ${code}`)));
    child.send(req);
  });
}
