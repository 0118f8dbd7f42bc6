// The engine on the fused plan (runtime/device/): the default with --device cuda. Checks that
// the CUDA provider loads before compiling anything, compiles the device graphs in the
// precision the device takes, checks every node of the graphs bound for CUDA against its kernel
// table, opens them and sizes the KV cache as the per-expert loader does.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkCudaNodes } from '../../graphs/cuda-op-check.ts';
import { checkCudaProvider } from '../../kernels/cuda-provider.ts';
import type { Manifest } from '../../models/compile.ts';
import { compileDeviceModel, type CompiledDeviceModel } from '../../models/compile-device.ts';
import { cpuFusedPrecision, describePrecision, resolveCudaPrecision } from '../../runtime/device/device-plan.ts';
import { DeviceRunner } from '../../runtime/device/device-runner.ts';
import { openDeviceSessions } from '../../runtime/device/device-sessions.ts';
import { decodeGraphCalls } from '../../runtime/device/graph-calls.ts';
import { loadModelSpec } from '../../models/registry.ts';
import { TextTokenizer } from '../tokenizer/tokenizer.ts';
import type { EngineOptions, ExecutionInfo, ModelInfo } from './api.ts';
import { Engine } from './engine.ts';
import type { LoadedEngine, LoadProgress } from './load-engine.ts';
import { planServing } from './serving-plan.ts';

/** The fused plan by default on CUDA; EngineOptions.plan can ask for it on the CPU too. */
export function usesFusedPlan(options: EngineOptions): boolean {
  return (options.plan ?? (options.session.provider === 'cuda' ? 'fused' : 'per-expert')) === 'fused';
}

export function perExpertExecution(manifest: Manifest, options: EngineOptions): ExecutionInfo {
  const shards = manifest.tensorParallel;
  const calls = decodeGraphCalls(manifest.spec, {
    plan: 'per-expert',
    batch: 1,
    shards,
    placement: manifest.expertPlacement,
    attention: options.session.attention,
  });
  return {
    device: 'cpu',
    plan: 'per-expert',
    precision: `${manifest.weights} weights, float32 activations, ${shards} tensor-parallel shard${shards > 1 ? 's' : ''}`,
    notes: [],
    graphCallsPerDecodeStep: { device: calls.device, cpu: calls.cpu },
  };
}

/** Throws naming every node of the CUDA-bound graphs the CUDA provider has no kernel for. */
function checkDeviceGraphs(compiled: CompiledDeviceModel): void {
  const { dir, manifest } = compiled;
  const files = [...manifest.layers.flatMap((l) => [l.attnIn, l.block]), manifest.lmHead];
  const problems = files.flatMap((file) => checkCudaNodes(readFileSync(join(dir, file))).map((p) => `${file}: ${p.op} ${p.problem}`));
  if (problems.length > 0) throw new Error(`graphs bound for CUDA use ops it cannot run:\n  ${problems.slice(0, 10).join('\n  ')}`);
}

export async function loadFusedEngine(options: EngineOptions, onProgress: LoadProgress): Promise<LoadedEngine> {
  const started = performance.now();
  const cuda = options.session.provider === 'cuda';
  const deviceId = options.session.deviceId ?? 0;
  if (cuda) checkCudaProvider(deviceId);
  const { spec } = loadModelSpec(options.modelDir);
  const { precision, notes } = cuda
    ? resolveCudaPrecision(spec, options.weights)
    : { precision: cpuFusedPrecision(options.weights), notes: [] };
  const compiled = compileDeviceModel({
    modelDir: options.modelDir,
    precision,
    cacheDir: options.cacheDir,
    onProgress: (done, total) => onProgress('compile', done, total),
  });
  if (cuda) checkDeviceGraphs(compiled);
  const rssBeforeSessions = process.memoryUsage.rss();
  const sessions = await openDeviceSessions(compiled, options.session, (done, total) => onProgress('load', done, total));
  const sessionsBytes = process.memoryUsage.rss() - rssBeforeSessions;
  const tokenizer = TextTokenizer.load(options.modelDir, options.textSpecialTokens);
  const { limits, kvCache, maxModelLen, scheduler } = planServing(spec, options);
  const calls = decodeGraphCalls(spec, { plan: 'fused', batch: 1, attention: options.session.attention });
  const info: ModelInfo = {
    spec,
    maxModelLen,
    kvCache,
    scheduler: limits,
    compiledDir: compiled.dir,
    reusedCompile: compiled.reused,
    loadMs: performance.now() - started,
    execution: {
      device: cuda ? `cuda:${deviceId}` : 'cpu',
      plan: 'fused',
      precision: describePrecision(precision),
      notes,
      graphCallsPerDecodeStep: { device: cuda ? calls.device : 0, cpu: cuda ? calls.cpu : calls.device + calls.cpu },
    },
    memory: { rssBeforeSessionsBytes: rssBeforeSessions, sessionsBytes, kvCacheBytes: kvCache.numTokens * kvCache.bytesPerToken },
  };
  return { engine: new Engine(new DeviceRunner(sessions, kvCache), scheduler), tokenizer, info };
}
