// `npm run bench:peer`: moe-server against llama.cpp on identical weights, in one run. The
// checkpoint moe-server loads is written as GGUF by bench/gguf (F32: the same values; Q4_0:
// the same 4-bit codes), llama.cpp runs through node-llama-cpp (installed on first use into
// the cache directory). A greedy-decoding guard first checks both engines compute the same
// model; then every round times each engine in turn, in fresh child processes, for each
// measurement: batch-1 decode and prefill per precision, the bench:serve mix at each
// concurrency, and the serving process's peak resident memory with the same KV capacity.
// Prints medians with min/max and the per-round ratios moe-server / llama.cpp; writes JSON.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { WeightPrecision } from '../../graphs/ops/linear.ts';
import { type CompiledModel, compileModel, defaultCacheDir, defaultTensorParallel } from '../../models/compile.ts';
import { loadModelSpec } from '../../models/registry.ts';
import type { ModelSpec } from '../../models/spec.ts';
import { activeParametersPerToken } from '../active-bytes.ts';
import { progressPrinter } from '../../server/progress.ts';
import { ensureBenchModel } from '../bench-model.ts';
import { timePrecisionInChild } from '../model-bench.ts';
import { median } from '../table.ts';
import { llamaArchFor } from '../gguf/llama-arch.ts';
import { ensureCheckpointGguf, type GgufWeights } from '../gguf/write-gguf.ts';
import { runInChild } from './child.ts';
import { checkInt4Blocks, int4BlockCompileOption, PEER_INT4_BLOCK_SIZE } from './int4-blocks.ts';
import { ensureNodeLlamaCpp, type KvMode } from './llama-cpp-package.ts';
import type { GreedyStep, LlamaRunRequest, LlamaRunResponse } from './llama-run.ts';
import { benchPrompt } from './llama-run.ts';
import type { MoeGreedyRequest } from './moe-greedy-run.ts';
import { runMoeServe } from './moe-serve.ts';
import { type GuardVerdict, judgeGreedy, type Metric, type MetricSummary, summariseMetric } from './peer-stats.ts';
import { machineDescription, printPeerTable } from './peer-report.ts';
import { MIX_MAX_TOKENS } from './serve-mix.ts';

export interface PeerBenchOptions {
  modelDir?: string;
  cacheDir?: string;
  llamaCppDir?: string;
  rounds: number;
  weights: WeightPrecision[];
  promptTokens: number;
  decodeTokens: number;
  /** llama.cpp configurations timed for decode and prefill. */
  llamaKv: KvMode[];
  /** The llama.cpp configuration serving runs use. */
  serveKv: KvMode;
  /** Empty: no serving runs. */
  concurrency: number[];
  requestsPerClient: number;
  minRequests: number;
  guardTokens: number;
  /** Time even when the guard finds the engines disagree. */
  force: boolean;
  serverArgs: string[];
}

const GGUF_OF: Record<WeightPrecision, GgufWeights> = { fp32: 'f32', int4: 'q4_0' };
/** Guard thresholds (nats): a near-tie may flip; listed log-probabilities must agree this closely. */
const GUARD = { fp32: { tie: 0.05, maxDiff: 0.01 }, int4: { tie: 0.5, maxDiff: 0.5 } } as const;
const TOP_K = 10;
/** Each serving sequence's context on both sides: the mix's longest request, rounded up. */
const CONTEXT_PER_SEQUENCE = Math.ceil(MIX_MAX_TOKENS / 256) * 256;

interface Setup {
  modelDir: string;
  cacheDir: string;
  moduleUrl: string;
  threads: number;
  spec: ModelSpec;
  vocabSize: number;
  compiled: Map<WeightPrecision, CompiledModel>;
  gguf: Map<WeightPrecision, string>;
}

function prepare(opts: PeerBenchOptions): Setup {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const modelDir = opts.modelDir ?? ensureBenchModel(cacheDir, progressPrinter('writing bench model'));
  const { spec } = loadModelSpec(modelDir);
  llamaArchFor(spec); // refuse a model llama.cpp would run differently before compiling anything
  const weights = new Set<WeightPrecision>(opts.weights);
  if (opts.concurrency.length > 0) weights.add('int4');
  const compiled = new Map<WeightPrecision, CompiledModel>();
  const gguf = new Map<WeightPrecision, string>();
  for (const w of weights) {
    const tensorParallel = defaultTensorParallel();
    const onProgress = progressPrinter(`compiling ${w}`);
    const model = compileModel({ modelDir, weights: w, cacheDir, tensorParallel, onProgress, ...int4BlockCompileOption });
    if (w === 'int4') {
      checkInt4Blocks(model);
      console.log(`int4: blocks of ${PEER_INT4_BLOCK_SIZE} weights in both engines (moe-server MatMulNBits, llama.cpp Q4_0)`);
    }
    compiled.set(w, model);
    const written = ensureCheckpointGguf(cacheDir, modelDir, GGUF_OF[w], progressPrinter(`writing ${GGUF_OF[w]} GGUF`));
    console.log(`${GGUF_OF[w]} GGUF: ${written.file}${written.reused ? ' (reused)' : ''}`);
    gguf.set(w, written.file);
  }
  const moduleUrl = ensureNodeLlamaCpp(cacheDir, opts.llamaCppDir);
  return { modelDir, cacheDir, moduleUrl, threads: availableParallelism(), spec, vocabSize: spec.vocabSize, compiled, gguf };
}

const llamaRun = (req: LlamaRunRequest): Promise<LlamaRunResponse> =>
  runInChild<LlamaRunRequest, LlamaRunResponse>(new URL('./llama-run.ts', import.meta.url), req);

async function guard(setup: Setup, opts: PeerBenchOptions): Promise<Record<string, GuardVerdict>> {
  const prompt = benchPrompt(16, setup.vocabSize);
  const verdicts: Record<string, GuardVerdict> = {};
  for (const w of opts.weights) {
    const moeReq: MoeGreedyRequest = {
      compiled: setup.compiled.get(w)!,
      threads: setup.threads,
      prompt,
      steps: opts.guardTokens,
      topK: TOP_K,
    };
    const moe = await runInChild<MoeGreedyRequest, GreedyStep[]>(new URL('./moe-greedy-run.ts', import.meta.url), moeReq);
    const common = { moduleUrl: setup.moduleUrl, gguf: setup.gguf.get(w)!, threads: setup.threads };
    const llama = await llamaRun({ ...common, kind: 'greedy', prompt, steps: opts.guardTokens, topK: TOP_K });
    if (llama.kind !== 'greedy') throw new Error('llama.cpp child answered the wrong request');
    const v = judgeGreedy(moe, llama.steps, GUARD[w].tie, GUARD[w].maxDiff);
    verdicts[w] = v;
    const d = v.divergence;
    const where = d ? `; step ${d.step}: ${d.moeToken} vs ${d.llamaToken}, gap ${d.gapNats.toFixed(3)} nats` : '';
    const agree = `${v.agreeing}/${v.steps} greedy tokens agree, max |delta log p| ${v.maxLogprobDiff.toExponential(2)}`;
    console.log(`guard ${w} vs ${GGUF_OF[w]}: ${agree}${where}: ${v.ok ? 'ok' : 'MISMATCH'}`);
    console.log(`  moe-server ${moe.map((s) => s.token).join(' ')}\n  llama.cpp  ${llama.steps.map((s) => s.token).join(' ')}`);
  }
  return verdicts;
}

/** Adds one round's value to a metric, creating it on first use. */
class Metrics {
  readonly byName = new Map<string, Metric>();
  add(name: string, higherIsBetter: boolean, side: 'moe' | string, value: number): void {
    let m = this.byName.get(name);
    if (m === undefined) this.byName.set(name, (m = { name, higherIsBetter, moe: [], llama: {} }));
    if (side === 'moe') m.moe.push(value);
    else (m.llama[side] ??= []).push(value);
    console.log(`  ${side === 'moe' ? 'moe-server' : `llama.cpp ${side}`}: ${name} ${value.toFixed(1)}`); // progress
  }
}

async function speedRound(setup: Setup, opts: PeerBenchOptions, w: WeightPrecision, moeFirst: boolean, metrics: Metrics): Promise<void> {
  const decode = `decode tok/s, ${w} vs ${GGUF_OF[w].toUpperCase()}`;
  const prefill = `prefill tok/s (${opts.promptTokens}), ${w} vs ${GGUF_OF[w].toUpperCase()}`;
  const moe = async (): Promise<void> => {
    const t = await timePrecisionInChild({
      compiled: setup.compiled.get(w)!,
      threads: setup.threads,
      promptTokens: opts.promptTokens,
      decodeTokens: opts.decodeTokens,
    });
    metrics.add(decode, true, 'moe', 1000 / median(t.decodeStepMs));
    metrics.add(prefill, true, 'moe', opts.promptTokens / (median(t.prefillMs) / 1000));
  };
  const llama = async (): Promise<void> => {
    const common = { moduleUrl: setup.moduleUrl, gguf: setup.gguf.get(w)!, threads: setup.threads };
    const r = await llamaRun({
      ...common,
      kind: 'speed',
      promptTokens: opts.promptTokens,
      decodeTokens: opts.decodeTokens,
      vocabSize: setup.vocabSize,
      kvModes: opts.llamaKv,
    });
    if (r.kind !== 'speed') throw new Error('llama.cpp child answered the wrong request');
    for (const c of r.configs) {
      metrics.add(decode, true, c.kv, 1000 / median(c.decodeStepMs));
      metrics.add(prefill, true, c.kv, opts.promptTokens / (c.prefillMs / 1000));
    }
  };
  for (const side of moeFirst ? [moe, llama] : [llama, moe]) await side();
}

async function serveRound(setup: Setup, opts: PeerBenchOptions, moeFirst: boolean, metrics: Metrics): Promise<void> {
  const maxConcurrency = Math.max(...opts.concurrency);
  const levels = opts.concurrency.map((c) => ({ concurrency: c, requests: Math.max(opts.minRequests, opts.requestsPerClient * c) }));
  const record = (side: string, summaries: LlamaServeLevels, peakRssMib: number): void => {
    for (const l of summaries) {
      const c = `c=${l.concurrency}`;
      if (l.failed > 0) throw new Error(`${side}: ${l.failed} requests failed at ${c}`);
      metrics.add(`${c} output tok/s (int4 vs Q4_0)`, true, side, l.outputTokensPerSecond);
      metrics.add(`${c} TTFT p50 ms`, false, side, l.ttftMs.p50);
      metrics.add(`${c} TTFT p99 ms`, false, side, l.ttftMs.p99);
      metrics.add(`${c} ITL p50 ms`, false, side, l.itlMs.p50);
      metrics.add(`${c} ITL p99 ms`, false, side, l.itlMs.p99);
    }
    metrics.add(`peak resident MiB (serving, KV ${maxConcurrency} x ${CONTEXT_PER_SEQUENCE} tokens)`, false, side, peakRssMib);
  };
  const moe = async (): Promise<void> => {
    const kvCacheTokens = maxConcurrency * CONTEXT_PER_SEQUENCE;
    const r = await runMoeServe({
      modelDir: setup.modelDir,
      cacheDir: setup.cacheDir,
      kvCacheTokens,
      levels,
      vocabSize: setup.vocabSize,
      serverArgs: opts.serverArgs,
    });
    record('moe', r.levels, r.peakRssMib);
  };
  const llama = async (): Promise<void> => {
    const common = { moduleUrl: setup.moduleUrl, gguf: setup.gguf.get('int4')!, threads: setup.threads };
    const r = await llamaRun({
      ...common,
      kind: 'serve',
      kv: opts.serveKv,
      levels,
      contextPerSequence: CONTEXT_PER_SEQUENCE,
      vocabSize: setup.vocabSize,
    });
    if (r.kind !== 'serve') throw new Error('llama.cpp child answered the wrong request');
    record(opts.serveKv, r.levels, r.peakRssMib);
  };
  for (const side of moeFirst ? [moe, llama] : [llama, moe]) await side();
}

/**
 * Decode as multiply-accumulates per second over the active weights, the unit bench:ceiling
 * measures ONNX Runtime's kernels in. node-llama-cpp has no call for one matmul, so llama.cpp's
 * kernels are compared end to end only.
 */
function printEffectiveRates(spec: ModelSpec, summaries: MetricSummary[]): void {
  const { quantisable, router } = activeParametersPerToken(spec);
  const macs = quantisable + router;
  const gmacs = (tokPerS: number): string => ((tokPerS * macs) / 1e9).toFixed(1);
  for (const s of summaries.filter((m) => m.name.startsWith('decode'))) {
    const llama = Object.entries(s.llama).map(([c, v]) => `llama.cpp ${c} ${gmacs(v.value.median)}`);
    console.log(`${s.name}: ${(macs / 1e6).toFixed(0)}M MACs/token -> GMAC/s moe-server ${gmacs(s.moe.median)}, ${llama.join(', ')}`);
  }
}

type LlamaServeLevels = Extract<LlamaRunResponse, { kind: 'serve' }>['levels'];

export async function runPeerBench(opts: PeerBenchOptions): Promise<number> {
  const startedAt = new Date();
  const machineBefore = machineDescription();
  const setup = prepare(opts);
  console.log(`model ${setup.modelDir}; ${setup.threads} threads each; llama.cpp from ${setup.moduleUrl}`);
  const guardVerdicts = await guard(setup, opts);
  const guardOk = Object.values(guardVerdicts).every((v) => v.ok);
  const metrics = new Metrics();
  if (!guardOk && !opts.force) console.error('the engines disagree (see the guard above): not timing them; --force times anyway');
  else {
    for (let round = 0; round < opts.rounds; round++) {
      const moeFirst = round % 2 === 0; // alternate which engine goes first
      for (const w of opts.weights) await speedRound(setup, opts, w, moeFirst, metrics);
      if (opts.concurrency.length > 0) await serveRound(setup, opts, moeFirst, metrics);
      console.log(`round ${round + 1}/${opts.rounds} done (${moeFirst ? 'moe-server' : 'llama.cpp'} first)`);
    }
  }
  const summaries = [...metrics.byName.values()].map(summariseMetric);
  if (summaries.length > 0) {
    printPeerTable(summaries, opts.rounds);
    printEffectiveRates(setup.spec, summaries);
  }
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `peer-bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const machine = { before: machineBefore, after: machineDescription() };
  const load = (m: { loadAverage: number[] }): string => m.loadAverage.join(' ');
  console.log(
    `${machine.after.cpu}, ${machine.after.cores} cores; load average ${load(machine.before)} before, ${load(machine.after)} after`,
  );
  if (Math.max(machine.before.loadAverage[0], machine.after.loadAverage[0]) > machine.after.cores / 2) {
    // Each engine's thread pool waits for its slowest thread, so foreign load slows the two
    // unequally; bench/RESULTS.md has an overloaded run where llama.cpp lost far more.
    console.log('warning: other work was running: it slows llama.cpp far more than moe-server, so the ratios flatter moe-server');
  }
  const raw = [...metrics.byName.values()];
  writeFileSync(
    file,
    JSON.stringify(
      {
        startedAt,
        modelDir: setup.modelDir,
        gguf: Object.fromEntries(setup.gguf),
        options: opts,
        machine,
        guard: guardVerdicts,
        summaries,
        raw,
      },
      null,
      2,
    ),
  );
  console.log(`wrote ${file}`);
  return guardOk || opts.force ? 0 : 1;
}
