// Routed experts compiled by worker threads give the same files as one thread, for every
// placement; a worker's failure fails the compile instead of hanging it.
import { mkdirSync, readdirSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../models/compile.ts';
import { expertJobs, openExpertWriter, runExpertJobs } from '../../models/compile-experts.ts';
import { writeTinyModel, type TinyModel } from '../helpers/tiny-model.ts';

const models: TinyModel[] = [];
afterAll(() => models.forEach((m) => m.remove()));

function filesOf(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
}

describe('parallel expert compile', () => {
  it.each([
    { tensorParallel: 1, expertPlacement: 'split' as const },
    { tensorParallel: 2, expertPlacement: 'split' as const },
    { tensorParallel: 2, expertPlacement: 'replicate' as const },
  ])('writes the same graphs with 3 threads as with 1 (tp $tensorParallel, $expertPlacement)', ({ tensorParallel, expertPlacement }) => {
    const model = writeTinyModel({ n_routed_experts: 16 }, 5, 'deepseek');
    models.push(model);
    const compile = (threads: number) =>
      compileModel({
        modelDir: model.dir,
        weights: 'int4',
        tensorParallel,
        expertPlacement,
        compileThreads: threads,
        cacheDir: join(model.cacheDir, `threads${threads}`),
      });
    const serial = compile(1);
    const parallel = compile(3);
    expect(parallel.manifest).toEqual(serial.manifest);
    const [a, b] = [filesOf(serial.dir), filesOf(parallel.dir)];
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [file, bytes] of a) expect(b.get(file)?.equals(bytes), file).toBe(true);
    expect([...a.keys()].filter((f) => f.includes('.expert')).length).toBeGreaterThan(0);
  });

  it("fails with a worker's error instead of hanging", () => {
    const model = writeTinyModel({}, 6, 'deepseek');
    models.push(model);
    const file = readdirSync(model.dir).find((f) => f.endsWith('.safetensors'))!;
    // Keep the first 40% of the data: the early layers' experts read, the later ones do not.
    const path = join(model.dir, file);
    truncateSync(path, Math.floor(readFileSync(path).length * 0.4));
    const settings = {
      modelDir: model.dir,
      dir: model.cacheDir,
      linear: { precision: 'int4' as const },
      tensorParallel: 1,
      placement: 'split' as const,
    };
    mkdirSync(model.cacheDir, { recursive: true });
    const writer = openExpertWriter(settings);
    const jobs = expertJobs(writer.spec).reverse(); // the worker meets an unreadable expert first
    // This thread takes no job until the worker has failed (however long a loaded machine
    // takes to start it), so the error must come from the worker.
    const idle = (stopIfFailed: () => void): void => {
      for (let waited = 0; waited < 120_000; waited += 50) {
        stopIfFailed();
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
      }
    };
    try {
      expect(() => runExpertJobs(writer, jobs, 1, idle, () => {})).toThrow(/compiling an expert failed: .*(truncated|data ends)/);
    } finally {
      writer.close();
    }
  });
});
