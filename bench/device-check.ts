// The GPU check's measurements (bench/gpu-check.sh runs this): the fixed cost of one ONNX
// Runtime call on the device against the CPU, and batch-1/8/32 decode of the fused plan on a
// DeepSeek-V2-Lite-shaped synthetic model at int4, with the graph calls per step of each plan.
//   node --import tsx bench/device-check.ts [--device cuda:0|cpu] [--layers 4] [--batches 1,8,32]
//        [--decode-steps 16] [--prompt-tokens 16] [--overrides FILE | --model DIR] [--cache-dir DIR] [--json FILE]
// The shape is a parameter: --layers sets the V2-Lite shape's depth; --overrides FILE takes a JSON
// object of config.json keys over the deepseek_v2 preset instead (e.g. a real-scale preset);
// --model DIR serves an existing checkpoint. --device cpu runs the same steps on the CPU provider
// (a dry run of the script, with a small shape).
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { GraphBuilder } from '../graphs/onnx/graph-builder.ts';
import { checkCudaProvider } from '../kernels/cuda-provider.ts';
import { GraphSession, ort, type SessionSettings } from '../kernels/session.ts';
import { compileDeviceModel } from '../models/compile-device.ts';
import { defaultCacheDir } from '../models/compile.ts';
import { loadModelSpec } from '../models/registry.ts';
import type { ModelSpec } from '../models/spec.ts';
import { ensureSyntheticCheckpoint } from '../models/synthetic.ts';
import { deepseekV2LiteOverrides } from '../models/synthetic-device-presets.ts';
import { cpuFusedPrecision, describePrecision, resolveCudaPrecision } from '../runtime/device/device-plan.ts';
import { DeviceRunner } from '../runtime/device/device-runner.ts';
import { type DeviceSessions, openDeviceSessions } from '../runtime/device/device-sessions.ts';
import type { KvCacheSize } from '../runtime/attention/attention-shard.ts';
import { decodeGraphCalls } from '../runtime/device/graph-calls.ts';
import { parseDevice } from '../server/config.ts';
import { BlockManager, SequenceBlocks } from '../server/engine/block-manager.ts';
import { progressPrinter } from '../server/progress.ts';
import { median, printTable } from './table.ts';

const { values: args } = parseArgs({
  options: {
    device: { type: 'string', default: 'cuda:0' },
    layers: { type: 'string', default: '4' },
    batches: { type: 'string', default: '1,8,32' },
    'decode-steps': { type: 'string', default: '16' },
    'prompt-tokens': { type: 'string', default: '16' },
    overrides: { type: 'string' },
    model: { type: 'string' },
    'cache-dir': { type: 'string' },
    json: { type: 'string' },
  },
});
const device = parseDevice(String(args.device), '--device');
const cuda = device.kind === 'cuda';
const settings: SessionSettings = cuda
  ? { provider: 'cuda', deviceId: device.id, intraOpThreads: 1 }
  : { provider: 'cpu', intraOpThreads: 0 };
const batches = String(args.batches).split(',').map(Number);
const decodeSteps = Number(args['decode-steps']);
const promptTokens = Number(args['prompt-tokens']);
const cacheDir = args['cache-dir'] ?? join(defaultCacheDir(), 'device-check');
const results: Record<string, unknown> = { device: args.device, date: new Date().toISOString() };
/** DeepSeek-V2-Lite's depth, to scale a shallower run's per-layer time to. */
const FULL_DEPTH = 27;

/** Median microseconds per call of a one-node graph (256 floats in and out), after warm-up. */
function callOverheadUs(where: SessionSettings): number {
  const dir = mkdtempSync(join(tmpdir(), 'moe-overhead-'));
  try {
    const b = new GraphBuilder('overhead');
    b.output(b.op('Add', [b.input('x', 'float32', [1, 256]), b.constFloat(1)]), 'y', 'float32', [1, 256]);
    writeFileSync(join(dir, 'add.onnx'), b.toBytes());
    const session = new GraphSession(join(dir, 'add.onnx'), where);
    const feeds = { x: new ort.Tensor('float32', new Float32Array(256), [1, 256]) };
    for (let i = 0; i < 200; i++) session.run(feeds);
    const times: number[] = [];
    for (let round = 0; round < 20; round++) {
      const start = performance.now();
      for (let i = 0; i < 100; i++) session.run(feeds);
      times.push(((performance.now() - start) / 100) * 1000);
    }
    session.release();
    return median(times);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function measureOverhead(): void {
  const rows: string[][] = [['cpu', callOverheadUs({ provider: 'cpu', intraOpThreads: 1 }).toFixed(1)]];
  if (cuda) rows.push([`cuda:${settings.deviceId}`, callOverheadUs(settings).toFixed(1)]);
  console.log('\nper-call overhead of a one-node graph (Add, 256 floats in and out; median of 20 x 100 calls)');
  printTable(['provider', 'us/call'], rows);
  results.overheadUs = Object.fromEntries(rows.map(([p, us]) => [p, Number(us)]));
}

function modelDir(): string {
  if (args.model) return args.model;
  const layers = Number(args.layers);
  const given: unknown = args.overrides ? JSON.parse(readFileSync(args.overrides, 'utf8')) : null;
  if (given !== null && (typeof given !== 'object' || Array.isArray(given)))
    throw new Error(`${args.overrides}: expected a JSON object of config.json keys`);
  const overrides =
    given === null
      ? deepseekV2LiteOverrides({ layers, maxPositions: 1024 })
      : { ...(given as Record<string, unknown>), num_hidden_layers: layers };
  const key = createHash('sha256').update(JSON.stringify(overrides)).digest('hex').slice(0, 12);
  const outDir = join(cacheDir, 'models', `deepseek_v2-${layers}l-${key}`);
  const onProgress = progressPrinter('writing the synthetic checkpoint');
  return ensureSyntheticCheckpoint({ outDir, family: 'deepseek_v2', size: 'bench', seed: 0, configOverrides: overrides, onProgress });
}

/** Wraps the sessions' run to add up the time spent in their calls, until restore(). */
function timeDeviceCalls(sessions: GraphSession[]): { total: () => number; reset: () => void; restore: () => void } {
  let ms = 0;
  for (const session of sessions) {
    const run = session.run.bind(session);
    session.run = (feeds) => {
      const start = performance.now();
      try {
        return run(feeds);
      } finally {
        ms += performance.now() - start;
      }
    };
  }
  // The wrappers are own properties: deleting them uncovers the class's run again.
  const restore = () => sessions.forEach((session) => Reflect.deleteProperty(session, 'run'));
  return { total: () => ms, reset: () => (ms = 0), restore };
}

/** Median ms of `session` on `rows` random hidden rows (and RoPE tables). */
function attnInMs(session: GraphSession, rows: number, spec: ModelSpec): number {
  const half = spec.rope.rotaryDim / 2;
  const feeds = {
    hidden: new ort.Tensor(
      'float32',
      Float32Array.from({ length: rows * spec.hiddenSize }, () => Math.random() - 0.5),
      [rows, spec.hiddenSize],
    ),
    cos: new ort.Tensor('float32', new Float32Array(rows * half).fill(1), [rows, half]),
    sin: new ort.Tensor('float32', new Float32Array(rows * half), [rows, half]),
  };
  for (let i = 0; i < 5; i++) session.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const start = performance.now();
    session.run(feeds);
    times.push(performance.now() - start);
  }
  return median(times);
}

/**
 * Where the attention projections are cheapest: one layer's attention-input graph on the device
 * (as the plan runs it) and on the CPU provider with every core, at each batch size.
 */
function measureAttentionInput(file: string, onDevice: GraphSession, spec: ModelSpec): void {
  const onCpu = new GraphSession(file, { provider: 'cpu', intraOpThreads: 0 });
  const rows = batches.map((batch) => [String(batch), attnInMs(onDevice, batch, spec).toFixed(3), attnInMs(onCpu, batch, spec).toFixed(3)]);
  onCpu.release();
  console.log(`\nattention input of one layer (q/k/v projections): ${String(args.device)} against the CPU provider, all cores (median ms)`);
  printTable(['batch', `${String(args.device)} ms`, 'cpu ms'], rows);
  results.attentionInput = rows.map(([batch, device, cpu]) => ({ batch: Number(batch), deviceMs: Number(device), cpuMs: Number(cpu) }));
}

interface DecodeTiming {
  batch: number;
  msPerStep: number;
  deviceCallsMs: number;
  lmHeadMs: number;
}

/** Median step times of `batch` sequences decoding after a prompt each (the first two steps are warm-up). */
function timeDecode(runner: DeviceRunner, sessions: DeviceSessions, batch: number, cache: KvCacheSize): DecodeTiming {
  const { vocabSize } = runner.spec;
  const layerTime = timeDeviceCalls([...sessions.attnIn, ...sessions.blocks]);
  const headTime = timeDeviceCalls([sessions.lmHead]);
  const blocks = new BlockManager(cache.numBlocks, cache.blockSize);
  const caches = Array.from({ length: batch }, () => {
    const table = new SequenceBlocks();
    blocks.allocate(table, [], promptTokens + decodeSteps + 1, 0);
    return table;
  });
  const prompt = (b: number) => Array.from({ length: promptTokens }, (_, i) => 3 + ((b * 7919 + i * 104729) % (vocabSize - 3)));
  runner.step(caches.map((table, b) => ({ tokens: prompt(b), cache: table, logits: 'last' as const })));
  const step: number[] = [];
  const device: number[] = [];
  const head: number[] = [];
  for (let s = 0; s < decodeSteps; s++) {
    layerTime.reset();
    headTime.reset();
    const start = performance.now();
    runner.step(caches.map((table, b) => ({ tokens: [3 + ((b + s) % 1000)], cache: table, logits: 'last' as const })));
    step.push(performance.now() - start);
    device.push(layerTime.total() + headTime.total());
    head.push(headTime.total());
  }
  for (const table of caches) blocks.release(table);
  layerTime.restore();
  headTime.restore();
  return { batch, msPerStep: median(step.slice(2)), deviceCallsMs: median(device.slice(2)), lmHeadMs: median(head.slice(2)) };
}

function printDecode(spec: ModelSpec, timings: DecodeTiming[]): void {
  const rows = timings.map(({ batch, msPerStep: ms, deviceCallsMs: dev, lmHeadMs: head }) => {
    // The layers scale with depth, the LM head does not: DeepSeek-V2-Lite has 27 layers.
    const fullMs = head + ((ms - head) * FULL_DEPTH) / spec.numLayers;
    const fused = decodeGraphCalls(spec, { plan: 'fused', batch });
    const perExpert = decodeGraphCalls(spec, { plan: 'per-expert', batch, shards: 1 });
    const tokS = (stepMs: number) => ((batch * 1000) / stepMs).toFixed(1);
    const row = [ms.toFixed(2), tokS(ms), dev.toFixed(2), (ms - dev).toFixed(2), fullMs.toFixed(1), tokS(fullMs)];
    return [String(batch), ...row, String(fused.device), String(perExpert.cpu)];
  });
  console.log(
    `\ndecode, fused plan on ${String(args.device)} (median of ${decodeSteps - 2} steps after a ${promptTokens}-token prompt each)`,
  );
  console.log(
    `device ms: inside device calls; other ms: CPU attention, embedding, host copies; est. ${FULL_DEPTH}-layer: the layers' ` +
      `time scaled to ${FULL_DEPTH} layers, the LM head's not`,
  );
  const full = `est. ${FULL_DEPTH}-layer`;
  const header = [
    'batch',
    'ms/step',
    'tok/s',
    'device ms',
    'other ms',
    `${full} ms`,
    `${full} tok/s`,
    'device calls/step',
    'per-expert calls/step',
  ];
  printTable(header, rows);
}

async function measureDecode(): Promise<void> {
  const dir = modelDir();
  const { spec } = loadModelSpec(dir);
  const { precision, notes } = cuda ? resolveCudaPrecision(spec, 'int4') : { precision: cpuFusedPrecision('int4'), notes: [] };
  console.log(`\nmodel ${dir}: ${spec.numLayers} layers, hidden ${spec.hiddenSize}; ${describePrecision(precision)}`);
  for (const note of notes) console.log(`note: ${note}`);
  let started = performance.now();
  const compiled = compileDeviceModel({ modelDir: dir, precision, cacheDir, onProgress: progressPrinter('compiling device graphs') });
  const compileS = (performance.now() - started) / 1000;
  started = performance.now();
  const sessions = await openDeviceSessions(compiled, settings, progressPrinter('opening sessions'));
  const loadS = (performance.now() - started) / 1000;
  console.log(`compile ${compileS.toFixed(1)} s${compiled.reused ? ' (reused)' : ''}, load ${loadS.toFixed(1)} s`);
  const blockSize = 16;
  const cache = { numBlocks: Math.ceil((promptTokens + decodeSteps + 1) / blockSize) * Math.max(...batches) * 2, blockSize };
  const runner = new DeviceRunner(sessions, cache);
  const timings = batches.map((batch) => timeDecode(runner, sessions, batch, cache));
  printDecode(spec, timings);
  results.decode = timings;
  results.model = { dir, layers: spec.numLayers, precision };
  const last = spec.numLayers - 1;
  measureAttentionInput(join(compiled.dir, compiled.manifest.layers[last].attnIn), sessions.attnIn[last], spec);
  await sessions.release();
}

if (cuda) checkCudaProvider(device.id);
measureOverhead();
await measureDecode();
if (args.json) {
  mkdirSync(dirname(args.json), { recursive: true });
  writeFileSync(args.json, JSON.stringify(results, null, 2));
}
