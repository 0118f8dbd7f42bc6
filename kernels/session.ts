// ONNX Runtime session creation in one place: execution provider placement, thread
// settings that suit many small sessions taking turns, and errors that name the graph.
import ort from 'onnxruntime-node';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionSettings {
  provider: ExecutionProvider;
  /** Intra-op threads per session; 0 lets ONNX Runtime pick (one per core). */
  intraOpThreads: number;
  /**
   * Keep weights memory-mapped instead of repacking them into private memory. Cheap to
   * load, but MatMulNBits is far slower unpacked, so only graphs without it may use this.
   */
  disablePrepacking: boolean;
}

export const defaultSessionSettings: SessionSettings = {
  provider: 'cpu',
  intraOpThreads: 2,
  disablePrepacking: false,
};

export class SessionLoadError extends Error {
  constructor(readonly modelPath: string, cause: unknown) {
    super(`failed to load ONNX graph ${modelPath}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'SessionLoadError';
  }
}

export async function createSession(modelPath: string, settings: SessionSettings): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: settings.provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: {
      session: {
        // Many sessions take turns on the same cores: spinning threads would steal them.
        intra_op: { allow_spinning: '0' },
        inter_op: { allow_spinning: '0' },
        disable_prepacking: settings.disablePrepacking ? '1' : '0',
      },
    },
  };
  try {
    return await ort.InferenceSession.create(modelPath, options);
  } catch (err) {
    throw new SessionLoadError(modelPath, err);
  }
}

export { ort };
