// Starts `moe-server serve` as a child process on a free port and waits until it is ready.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/moe-server.mjs', import.meta.url));

export interface ServerProcess {
  baseUrl: string;
  child: ChildProcess;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

export function startServer(args: string[], onLine?: (line: string) => void): Promise<ServerProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let stderr = '';
  let baseUrl: string | null = null;
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      for (const line of chunk.split(/[\r\n]+/)) if (line.trim()) onLine?.(line);
      baseUrl ??= /listening on (http:\/\/\S+)/.exec(stderr)?.[1] ?? null;
      if (baseUrl && /^ready:/m.test(stderr)) {
        resolve({
          baseUrl,
          child,
          stop: () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`the server exited (${code}) before it was ready:\n${stderr.slice(-2000)}`)));
  });
}
