// Runs one benchmark module in a fresh child process: the request goes over IPC, the child
// answers once and exits. Every timed run of either engine gets a process of its own, so one
// run's heap, allocator and thread pools cannot slow the next.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD_ENTRY = fileURLToPath(new URL('../../runtime/worker-bootstrap.mjs', import.meta.url));

/** `moduleUrl` must answer the request it receives with process.send and then exit. */
export function runInChild<Request, Response>(moduleUrl: URL, request: Request): Promise<Response> {
  const child = fork(CHILD_ENTRY, [moduleUrl.href], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let answer: { value: Response } | null = null;
    child.once('message', (message) => {
      answer = { value: message as Response };
    });
    child.once('exit', (code) => {
      if (answer !== null) resolve(answer.value);
      else reject(new Error(`benchmark child ${moduleUrl.pathname} exited with code ${code} before answering`));
    });
    child.send(request as object);
  });
}

/** Child side: serve one request, then exit (0 on success, 1 with the error printed). */
export function answerOnce<Request, Response>(handle: (request: Request) => Promise<Response>): void {
  process.once('message', (request: Request) => {
    handle(request).then(
      (response) => process.send?.(response as object, () => process.exit(0)),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  });
}

/** This process's peak resident set so far, in MiB (the kernel's high-water mark). */
export function peakRssMib(): number {
  return process.resourceUsage().maxRSS / 1024;
}
