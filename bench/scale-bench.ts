// `npm run bench:scale -- --shape v2-lite|olmoe|qwen3-30b-a3b|mixtral-8x7b`: a real-scale run.
// Writes a synthetic BF16 checkpoint with the model's published config (streamed: one tensor
// in memory at a time), compiles it at int4, serves it, and prints compile time and peak
// memory, process start to /health 200, the server's resident memory split into weights / KV
// cache / the rest against the compiled bytes on disk and the target (1.2 x compiled + KV +
// 0.5 GiB), and prefill and batch-1 decode speed against their rooflines (decode: read
// bandwidth, measured just before each decode round, over the active weight bytes; prefill:
// the int4 matmul rate at 256 rows over the active weights). Checks free disk and memory first and says what it needs. --layers N keeps
// every width but only N decoder layers (for a model whose full depth does not fit here).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { defaultCacheDir } from '../models/compile.ts';
import { estimateModelMemory, RUNTIME_BASE_BYTES } from '../models/memory-estimate.ts';
import { familyFor } from '../models/registry.ts';
import { REAL_SHAPES, type RealShape } from '../models/real-shapes.ts';
import { resolveSynthetic } from '../models/synthetic.ts';
import { activeParametersPerToken, activeWeightBytesPerToken } from './active-bytes.ts';
import { measureRates } from './kernel-rates.ts';
import { gib, machineResources, sampleProcess } from './scale/proc-memory.ts';
import { measureServing, type ServeMeasurement } from './scale/serve-measure.ts';
import { median } from './table.ts';

const { values } = parseArgs({
  options: {
    shape: { type: 'string' },
    layers: { type: 'string' },
    'work-dir': { type: 'string' },
    'kv-cache-mib': { type: 'string', default: '512' },
    'prompt-tokens': { type: 'string', default: '256' },
    'decode-tokens': { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
    'reserve-disk-gib': { type: 'string', default: '10' },
    clean: { type: 'boolean', default: false },
    'server-arg': { type: 'string', multiple: true, default: [] },
  },
});
const shape = values.shape as RealShape;
if (!REAL_SHAPES.includes(shape)) throw new Error(`--shape must be one of ${REAL_SHAPES.join(', ')}`);
const layers = values.layers === undefined ? undefined : Number(values.layers);
const workDir = values['work-dir'] ?? join(defaultCacheDir(), 'scale');
const name = `${shape}${layers ? `-${layers}layers` : ''}`;
const checkpointDir = join(workDir, `${name}-checkpoint`);
const cacheDir = join(workDir, `${name}-compiled`);
const kvCacheMib = Number(values['kv-cache-mib']);
const log = (line: string): void => console.log(line);
mkdirSync(workDir, { recursive: true });

// What it needs, before anything is written.
const resolved = resolveSynthetic({ outDir: checkpointDir, shape, configOverrides: layers ? { num_hidden_layers: layers } : {} });
const spec = familyFor(resolved.family, 'config.json').parseConfig(resolved.config, 'config.json');
const names = familyFor(resolved.family, 'config.json').weightNames(spec);
const tensorParallel = Math.min(2, availableParallelism());
const estimate = estimateModelMemory(spec, names, { weights: 'int4', tensorParallel, replicateExperts: false });
const have = machineResources(workDir);
const present = (dir: string): boolean => dirBytes(dir) > 0;
const diskNeeded =
  (present(checkpointDir) ? 0 : estimate.checkpointBytes) +
  (present(cacheDir) ? 0 : estimate.compiledBytes) +
  Number(values['reserve-disk-gib']) * 2 ** 30;
const memoryNeeded = estimate.residentWeightBytes + kvCacheMib * 2 ** 20 + RUNTIME_BASE_BYTES;
log(
  `bench:scale ${name}: ${(estimate.checkpointBytes / 2 / 1e9).toFixed(2)}B parameters (${spec.numLayers} layers), ${estimate.numSessions} sessions`,
);
log(
  `  needs disk: checkpoint ${gib(estimate.checkpointBytes)} + compiled ~${gib(estimate.compiledBytes)} + ${values['reserve-disk-gib']} GiB left for others = ${gib(diskNeeded)} (free: ${gib(have.diskFree)})`,
);
log(
  `  needs memory to serve: ~${gib(memoryNeeded)} (weights ~${gib(estimate.residentWeightBytes)}, KV ${kvCacheMib} MiB) (available: ${gib(have.memAvailable)} of ${gib(have.memTotal)})`,
);
if (diskNeeded > have.diskFree) throw new Error(`not enough free disk: needs ${gib(diskNeeded)}, ${gib(have.diskFree)} free`);
if (memoryNeeded > have.memAvailable)
  throw new Error(`not enough memory to serve: needs ~${gib(memoryNeeded)}, ${gib(have.memAvailable)} available`);

const root = fileURLToPath(new URL('..', import.meta.url));
const write = await measuredChild(
  [join(root, 'bench/scale/write-child.ts'), checkpointDir, shape, ...(layers ? [String(layers)] : [])],
  true,
);
const compile = await measuredChild(
  [join(root, 'bin/moe-server.mjs'), 'compile', '--model', checkpointDir, '--weights', 'int4', '--cache-dir', cacheDir],
  false,
);
const compiledDir = /(?:compiled|reused) (\S+)/.exec(compile.stdout)?.[1];
if (!compiledDir) throw new Error(`compile printed no directory:\n${compile.stdout}`);
const compiledBytes = dirBytes(compiledDir);
const numGraphs = readdirSync(compiledDir).filter((f) => f.endsWith('.onnx')).length;

const serving = await measureServing(
  {
    modelDir: checkpointDir,
    cacheDir,
    kvCacheMib,
    promptTokens: Number(values['prompt-tokens']),
    decodeTokens: Number(values['decode-tokens']),
    rounds: Number(values.rounds),
    vocabSize: spec.vocabSize,
    serverArgs: values['server-arg'].flatMap((arg) => arg.split('=')),
  },
  log,
);
const kernelDir = mkdtempSync(join(tmpdir(), 'moe-scale-kernel-'));
const int4Rate = (await measureRates('int4', tensorParallel, kernelDir)).find((r) => r.rows === 256)!.macsPerSecond;
rmSync(kernelDir, { recursive: true, force: true });
report(serving, int4Rate);
if (values.clean) {
  rmSync(checkpointDir, { recursive: true, force: true });
  rmSync(cacheDir, { recursive: true, force: true });
  log(`removed ${checkpointDir} and ${cacheDir}`);
}

function report(s: ServeMeasurement, macsPerSecond: number): void {
  const prefill = median(s.prefillSeconds);
  const promptTokens = Number(values['prompt-tokens']);
  const bytesPerToken = activeWeightBytesPerToken(spec, 'int4');
  // Each round against the bandwidth read just before it (serve-measure.ts), then the median.
  const decodeFractions = s.decodeMsPerToken.map((ms, r) => ((1000 / ms) * bytesPerToken) / s.decodeBandwidth[r]);
  const { quantisable, router } = activeParametersPerToken(spec);
  const prefillRoofline = macsPerSecond / (quantisable + router - spec.vocabSize * spec.hiddenSize);
  const target = 1.2 * compiledBytes + s.kvCacheBytes + 0.5 * 2 ** 30;
  const range = (v: number[], f: (x: number) => string): string => `${f(median(v))} (${f(Math.min(...v))}-${f(Math.max(...v))})`;
  const lines = [
    `### ${new Date().toISOString().slice(0, 10)} bench:scale --shape ${shape}${layers ? ` --layers ${layers}` : ''}`,
    `Command: \`npm run bench:scale -- ${process.argv.slice(2).join(' ')}\`; machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? '?'}), ` +
      `${gib(have.memTotal)} RAM; load average at the end ${loadAverage()}.`,
    '',
    '| | |',
    '|---|---|',
    `| model | ${(estimate.checkpointBytes / 2 / 1e9).toFixed(2)}B parameters, ${spec.numLayers} layers, ${numGraphs} graphs, tensor-parallel ${tensorParallel} |`,
    `| checkpoint write | ${write.seconds.toFixed(0)} s, peak RSS ${gib(write.peakRss)} |`,
    `| compile (int4) | ${compile.seconds.toFixed(0)} s wall, ${compile.cpuSeconds.toFixed(0)} CPU-s, peak RSS ${gib(compile.peakRss)}; ${gib(compiledBytes)} compiled |`,
    `| process start to /health 200 | ${s.startToHealthySeconds.toFixed(1)} s |`,
    `| RSS at ready | ${gib(s.atReady.rss)} (anon ${gib(s.atReady.anon)}, file ${gib(s.atReady.file)}); opening the sessions took ${gib(s.sessionsBytes)} |`,
    `| peak RSS serving | ${gib(s.peakRss)} = weights (opening the sessions) ${gib(s.sessionsBytes)} + the rest ${gib(s.peakRss - s.sessionsBytes)} ` +
      `(Node and ONNX Runtime before the sessions, activations, and the KV cache's touched pages: configured ${gib(s.kvCacheBytes)}) |`,
    `| after ${s.loadRequests} concurrent requests | RSS ${gib(s.afterLoad.rss)} (${s.loadFailures} failed) |`,
    `| chat completion (streamed) | ${s.chat.chunks} content chunks: ${JSON.stringify(s.chat.text.slice(0, 40))} |`,
    `| target 1.2 x compiled + KV + 0.5 GiB | ${gib(target)}: peak is ${(s.peakRss / target).toFixed(2)}x of it; ${(s.peakRss / compiledBytes).toFixed(2)}x the compiled bytes |`,
    `| prefill ${promptTokens} tokens | ${range(
      s.prefillSeconds.map((x) => promptTokens / x),
      (x) => x.toFixed(1),
    )} tok/s; ${((promptTokens / prefill / prefillRoofline) * 100).toFixed(0)}% of the int4 matmul ceiling (${prefillRoofline.toFixed(0)} tok/s at ${(macsPerSecond / 1e9).toFixed(0)} GMAC/s) |`,
    `| batch-1 decode | ${range(
      s.decodeMsPerToken.map((x) => 1000 / x),
      (x) => x.toFixed(2),
    )} tok/s; ${range(decodeFractions, (x) => `${(x * 100).toFixed(0)}%`)} of the bandwidth roofline, each round against the read bandwidth just before it ` +
      `(${range(s.decodeBandwidth, (x) => (x / 1e9).toFixed(1))} GB/s: ${range(
        s.decodeBandwidth.map((b) => b / bytesPerToken),
        (x) => x.toFixed(1),
      )} tok/s) |`,
  ];
  log(`\n${lines.join('\n')}\n`);
  const outDir = join(root, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `scale-${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify({ shape, layers, estimate, write, compile, compiledBytes, numGraphs, serving, macsPerSecond }, null, 2),
  );
  log(`wrote ${file}`);
}

interface ChildRun {
  seconds: number;
  cpuSeconds: number;
  peakRss: number;
  stdout: string;
}

/** Runs a node script (through tsx) as its own process, sampling its memory and CPU. */
function measuredChild(args: string[], typescript: boolean): Promise<ChildRun> {
  const started = performance.now();
  const child = spawn(process.execPath, [...(typescript ? ['--import', 'tsx'] : []), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const sampler = sampleProcess(child.pid!, 500);
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    process.stdout.write(chunk);
  });
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => {
      const { peakRss, cpuSeconds } = sampler.stop();
      if (code !== 0) reject(new Error(`${args.slice(0, 2).join(' ')} exited with code ${code}`));
      else resolve({ seconds: (performance.now() - started) / 1000, cpuSeconds, peakRss, stdout });
    }),
  );
}

function dirBytes(dir: string): number {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .reduce((n, e) => n + statSync(join(e.parentPath, e.name)).size, 0);
  } catch {
    return 0;
  }
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(1))
    .join(', ');
}
