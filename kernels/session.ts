// ONNX Runtime session creation in one place: execution provider placement, thread
// settings that suit many small sessions taking turns, and errors that name the graph.
//
// Sessions here are synchronous. onnxruntime-node's InferenceSession.run already blocks
// the thread it runs on, but first defers the call through setImmediate and a Promise and
// wraps every output again, a large share of a small graph's call (bench/RESULTS.md). A model
// step makes dozens of calls, so GraphSession calls the package's native session object
// directly (the same object its own backend wraps).
import ort from 'onnxruntime-node';
import { createRequire } from 'node:module';
import type { Binding } from 'onnxruntime-node/dist/binding.js';

const { binding, initOrt } = createRequire(import.meta.url)('onnxruntime-node/dist/binding.js') as {
  binding: { InferenceSession: Binding.InferenceSessionConstructor };
  initOrt: () => void;
};

export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionSettings {
  provider: ExecutionProvider;
  /** CUDA device index (provider 'cuda'); default 0. */
  deviceId?: number;
  /** Intra-op threads per session; 0 lets ONNX Runtime pick (one per core). */
  intraOpThreads: number;
  /**
   * Who attends over the KV cache for decoding tokens: the WebAssembly kernel reading
   * blocks in place (the default) or ONNX Runtime's graphs. Prompt chunks always use ONNX Runtime.
   */
  attention?: 'wasm' | 'onnx';
}

export class SessionLoadError extends Error {
  constructor(
    readonly modelPath: string,
    cause: unknown,
  ) {
    super(`failed to load ONNX graph ${modelPath}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'SessionLoadError';
  }
}

export type Feeds = Record<string, ort.Tensor>;
export type Outputs = Record<string, ort.Tensor>;

/** One loaded graph, run synchronously on the calling thread. */
export class GraphSession {
  private readonly native: Binding.InferenceSession;
  readonly inputNames: string[];
  readonly outputNames: string[];
  private readonly fetches: Record<string, null>;

  constructor(
    readonly modelPath: string,
    settings: SessionSettings,
  ) {
    initOrt();
    this.native = new binding.InferenceSession();
    try {
      this.native.loadModel(modelPath, sessionOptions(settings));
    } catch (err) {
      throw new SessionLoadError(modelPath, err);
    }
    this.inputNames = this.native.inputMetadata.map((m) => m.name);
    this.outputNames = this.native.outputMetadata.map((m) => m.name);
    this.fetches = Object.fromEntries(this.outputNames.map((name) => [name, null]));
  }

  /** Runs the graph on `feeds` (every input by name) and returns every output. */
  run(feeds: Feeds): Outputs {
    return this.native.run(feeds, this.fetches, {}) as Outputs;
  }

  release(): void {
    this.native.dispose();
  }
}

export function sessionOptions(settings: SessionSettings): ort.InferenceSession.SessionOptions {
  const cuda = settings.provider === 'cuda';
  return {
    // CUDA alone: ONNX Runtime then refuses (with the option below) a graph any of whose nodes
    // would run on the CPU, and a provider that fails to load is an error, never a silent
    // CPU session. Listing 'cpu' beside it would conflict with that option.
    executionProviders: cuda ? [{ name: 'cuda', deviceId: settings.deviceId ?? 0 }] : ['cpu'],
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: {
      session: {
        // Many sessions take turns on the same cores: spinning threads would steal them.
        intra_op: { allow_spinning: '0' },
        inter_op: { allow_spinning: '0' },
        ...(cuda ? { disable_cpu_ep_fallback: '1' } : {}),
      },
    },
  };
}

export { ort };
