// llama.cpp's own matmul kernels, timed at a given shape: ggml's libraries as node-llama-cpp
// ships them, called through koffi (an FFI library, installed on first use next to
// node-llama-cpp). Writing these calls by hand is the only way to time ggml's kernels alone from
// Node: node-llama-cpp exposes whole models, not operators.
//
// What runs is what llama.cpp runs for a model's weights on this CPU: the CPU backend variant
// ggml itself would load (the highest ggml_backend_score), F32 weights in the plain CPU buffer,
// Q4_0 weights in the CPU backend's "extra" buffer type when it has one (CPU_REPACK: Q4_0
// interleaved for the AVX2 GEMV/GEMM kernels), the activations quantised to Q8_0 by ggml as in
// a model, and ggml's own thread pool with `threads` threads.
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ensureCachedPackages } from './cached-install.ts';
import { llamaCppBinaries, nodeLlamaCppRoot } from './llama-cpp-package.ts';

const KOFFI_VERSION = '3.3.4';

export type GgmlWeightType = 'f32' | 'q4_0';
const GGML_TYPE: Record<GgmlWeightType, number> = { f32: 0, q4_0: 2 };

export interface GgmlShape {
  inFeatures: number;
  outFeatures: number;
}

export interface GgmlMatmulBench {
  /** The CPU backend variant loaded (e.g. libggml-cpu-haswell.so) and the weights' buffer type. */
  variant: string;
  bufferType: string;
  /** Seconds of each round: `copies` matmuls of `rows` activation rows, one graph. */
  time(rows: number, rounds: number): number[];
  /** y = x W^T for one copy, for checking the kernels compute what they should. */
  multiply(x: Float32Array, rows: number): Float32Array;
  free(): void;
}

type Ptr = unknown;
type Fn = (...args: unknown[]) => unknown;

interface Koffi {
  load(path: string): { func(signature: string): Fn };
  register(callback: Fn, type: unknown): unknown;
  unregister(callback: unknown): void;
  struct(name: string, members: Record<string, string>): unknown;
  opaque(name: string): unknown;
  pointer(name: string, type: unknown): unknown;
  proto(signature: string): unknown;
  call(ptr: Ptr, proto: unknown, ...args: unknown[]): unknown;
  decode(ptr: Ptr, offset: number, type: string): unknown;
}

function loadKoffi(cacheDir: string): Koffi {
  const root = join(cacheDir, 'peer', `koffi-${KOFFI_VERSION}`);
  // koffi's prebuilt binary comes in an optional dependency per platform: keep optionals.
  ensureCachedPackages(root, { koffi: KOFFI_VERSION }, { omitOptional: false });
  return createRequire(join(root, 'package.json'))('koffi') as Koffi;
}

interface Ggml {
  variant: string;
  init: Fn;
  free: Fn;
  newTensor2d: Fn;
  mulMat: Fn;
  newGraph: Fn;
  buildForwardExpand: Fn;
  tensorOverhead: Fn;
  graphOverhead: Fn;
  quantizeChunk: Fn;
  rowSize: Fn;
  allocCtxTensors: Fn;
  bufferFree: Fn;
  buftName: Fn;
  tensorSet: Fn;
  tensorGet: Fn;
  graphCompute: Fn;
  backendFree: Fn;
  cpuInit: Fn;
  cpuBackendInit: Fn;
  cpuSetThreads: Fn;
  cpuBufferType: Fn;
  /** Runs `fn` with ggml's log lines dropped (the repacking logs one line per tensor). */
  quietly<T>(fn: () => T): T;
  /** The CPU backend's extra buffer types (NULL-terminated), as llama.cpp asks for them. */
  extraBufferTypes(): Ptr[];
}

let ggml: Ggml | undefined;

function loadGgml(cacheDir: string): Ggml {
  if (ggml) return ggml;
  const koffi = loadKoffi(cacheDir);
  const bins = llamaCppBinaries(nodeLlamaCppRoot(cacheDir));
  const base = koffi.load(join(bins, 'libggml-base.so'));
  // ggml's loader (ggml_backend_load_best) takes the variant whose score is highest on this CPU.
  let best: { file: string; score: number } = { file: '', score: 0 };
  for (const file of readdirSync(bins).filter((f) => /^libggml-cpu-.*\.so$/.test(f))) {
    const score = koffi.load(join(bins, file)).func('int ggml_backend_score(void)')() as number;
    if (score > best.score) best = { file, score };
  }
  if (best.score === 0) throw new Error(`no ggml CPU backend in ${bins} runs on this CPU`);
  const cpu = koffi.load(join(bins, best.file));
  koffi.struct('ggml_init_params', { mem_size: 'size_t', mem_buffer: 'void *', no_alloc: 'bool' });
  for (const name of [
    'ggml_context',
    'ggml_tensor',
    'ggml_cgraph',
    'ggml_backend',
    'ggml_backend_buffer',
    'ggml_backend_buffer_type',
    'ggml_backend_reg',
    'ggml_backend_device',
  ]) {
    koffi.pointer(`${name}_t`, koffi.opaque(name));
  }
  const regDevGet = base.func('ggml_backend_device_t ggml_backend_reg_dev_get(ggml_backend_reg_t reg, size_t index)');
  const procAddress = base.func('void *ggml_backend_reg_get_proc_address(ggml_backend_reg_t reg, const char *name)');
  const cpuReg = cpu.func('ggml_backend_reg_t ggml_backend_cpu_reg(void)');
  const getExtra = koffi.proto('void *ggml_backend_dev_get_extra_bufts_t(ggml_backend_device_t device)');
  const logProto = koffi.proto('void ggml_log_callback_t(int level, const char *text, void *user_data)');
  const logSet = base.func('void ggml_log_set(ggml_log_callback_t *callback, void *user_data)');
  const logCallback = koffi.pointer('ggml_log_callback_ptr', logProto);
  ggml = {
    variant: best.file,
    init: base.func('ggml_context_t ggml_init(ggml_init_params params)'),
    free: base.func('void ggml_free(ggml_context_t ctx)'),
    newTensor2d: base.func('ggml_tensor_t ggml_new_tensor_2d(ggml_context_t ctx, int type, int64_t ne0, int64_t ne1)'),
    mulMat: base.func('ggml_tensor_t ggml_mul_mat(ggml_context_t ctx, ggml_tensor_t a, ggml_tensor_t b)'),
    newGraph: base.func('ggml_cgraph_t ggml_new_graph(ggml_context_t ctx)'),
    buildForwardExpand: base.func('void ggml_build_forward_expand(ggml_cgraph_t graph, ggml_tensor_t tensor)'),
    tensorOverhead: base.func('size_t ggml_tensor_overhead(void)'),
    graphOverhead: base.func('size_t ggml_graph_overhead(void)'),
    quantizeChunk: base.func(
      'size_t ggml_quantize_chunk(int type, const float *src, _Out_ uint8_t *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix)',
    ),
    rowSize: base.func('size_t ggml_row_size(int type, int64_t ne)'),
    allocCtxTensors: base.func(
      'ggml_backend_buffer_t ggml_backend_alloc_ctx_tensors_from_buft(ggml_context_t ctx, ggml_backend_buffer_type_t buft)',
    ),
    bufferFree: base.func('void ggml_backend_buffer_free(ggml_backend_buffer_t buffer)'),
    buftName: base.func('const char *ggml_backend_buft_name(ggml_backend_buffer_type_t buft)'),
    tensorSet: base.func('void ggml_backend_tensor_set(ggml_tensor_t tensor, const void *data, size_t offset, size_t size)'),
    tensorGet: base.func('void ggml_backend_tensor_get(ggml_tensor_t tensor, _Out_ void *data, size_t offset, size_t size)'),
    graphCompute: base.func('int ggml_backend_graph_compute(ggml_backend_t backend, ggml_cgraph_t graph)'),
    backendFree: base.func('void ggml_backend_free(ggml_backend_t backend)'),
    cpuInit: cpu.func('void ggml_cpu_init(void)'),
    cpuBackendInit: cpu.func('ggml_backend_t ggml_backend_cpu_init(void)'),
    cpuSetThreads: cpu.func('void ggml_backend_cpu_set_n_threads(ggml_backend_t backend, int n_threads)'),
    cpuBufferType: base.func('ggml_backend_buffer_type_t ggml_backend_cpu_buffer_type(void)'),
    quietly(fn) {
      // Only around calls on this thread: koffi callbacks must not be called from ggml's workers.
      const drop = koffi.register(() => {}, logCallback);
      logSet(drop, null);
      try {
        return fn();
      } finally {
        logSet(null, null);
        koffi.unregister(drop);
      }
    },
    extraBufferTypes() {
      const reg = cpuReg();
      const fn = procAddress(reg, 'ggml_backend_dev_get_extra_bufts');
      if (fn === null) return [];
      const list = koffi.call(fn, getExtra, regDevGet(reg, 0)) as Ptr;
      // A NULL-terminated array of pointers, read one entry at a time.
      const found: Ptr[] = [];
      for (let offset = 0; ; offset += 8) {
        const entry = koffi.decode(list, offset, 'void *') as Ptr;
        if (entry === null) return found;
        found.push(entry);
      }
    },
  };
  ggml.cpuInit();
  return ggml;
}

/** Weights as sin(i) * 0.05, the same pattern as the ONNX Runtime side of bench:ceiling. */
export function ggmlWeightValues(shape: GgmlShape): Float32Array {
  const w = new Float32Array(shape.inFeatures * shape.outFeatures);
  for (let i = 0; i < w.length; i++) w[i] = Math.sin(i * 12.9898) * 0.05;
  return w;
}

/**
 * `copies` weight matrices of `shape` held as `type` (more than the caches hold, so weights
 * stream from memory as in a step), ready to be multiplied by activation rows.
 */
export function ggmlMatmulBench(
  cacheDir: string,
  type: GgmlWeightType,
  shape: GgmlShape,
  copies: number,
  threads: number,
): GgmlMatmulBench {
  const g = loadGgml(cacheDir);
  const { inFeatures: k, outFeatures: n } = shape;
  const backend = g.cpuBackendInit();
  g.cpuSetThreads(backend, threads);
  // llama.cpp puts a Q4_0 weight in the first extra buffer type that takes it (CPU_REPACK here).
  const weightBuft = type === 'q4_0' ? (g.extraBufferTypes()[0] ?? g.cpuBufferType()) : g.cpuBufferType();
  const overhead = Number(g.tensorOverhead());
  const weightCtx = g.init({ mem_size: overhead * (copies + 1), mem_buffer: null, no_alloc: true });
  const weights = Array.from({ length: copies }, () => g.newTensor2d(weightCtx, GGML_TYPE[type], k, n));
  const weightBuffer = g.allocCtxTensors(weightCtx, weightBuft);
  const values = ggmlWeightValues(shape);
  const bytes = type === 'f32' ? new Uint8Array(values.buffer) : new Uint8Array(Number(g.rowSize(GGML_TYPE[type], k)) * n);
  if (type !== 'f32') g.quantizeChunk(GGML_TYPE[type], values, bytes, 0, n, k, null);
  g.quietly(() => {
    for (const w of weights) g.tensorSet(w, bytes, 0, bytes.byteLength);
  });

  const graphs = new Map<number, { ctx: unknown; buffer: unknown; x: unknown; ys: unknown[]; graph: unknown }>();
  const graphFor = (rows: number) => {
    let built = graphs.get(rows);
    if (built) return built;
    const ctx = g.init({ mem_size: overhead * (2 * copies + 2) + Number(g.graphOverhead()), mem_buffer: null, no_alloc: true });
    const x = g.newTensor2d(ctx, GGML_TYPE.f32, k, rows);
    const ys = weights.map((w) => g.mulMat(ctx, w, x));
    const graph = g.newGraph(ctx);
    for (const y of ys) g.buildForwardExpand(graph, y);
    const buffer = g.allocCtxTensors(ctx, g.cpuBufferType());
    const xs = new Float32Array(rows * k).fill(0.01);
    g.tensorSet(x, xs, 0, xs.byteLength);
    built = { ctx, buffer, x, ys, graph };
    graphs.set(rows, built);
    return built;
  };
  const compute = (graph: unknown) => {
    const status = g.graphCompute(backend, graph) as number;
    if (status !== 0) throw new Error(`ggml_backend_graph_compute failed (status ${status})`);
  };

  return {
    variant: g.variant,
    bufferType: g.buftName(weightBuft) as string,
    time(rows, rounds) {
      const { graph } = graphFor(rows);
      compute(graph); // warm-up: first touch, thread start
      return Array.from({ length: rounds }, () => {
        const started = performance.now();
        compute(graph);
        return (performance.now() - started) / 1000;
      });
    },
    multiply(xs, rows) {
      const built = graphFor(rows);
      g.tensorSet(built.x, xs, 0, xs.byteLength);
      compute(built.graph);
      const y = new Float32Array(rows * n);
      g.tensorGet(built.ys[0], y, 0, y.byteLength);
      return y;
    },
    free() {
      for (const built of graphs.values()) {
        g.bufferFree(built.buffer);
        g.free(built.ctx);
      }
      g.bufferFree(weightBuffer);
      g.free(weightCtx);
      g.backendFree(backend);
    },
  };
}
