// The fused device plan of a tiny checkpoint, compiled through the real compile step and run
// by the real runner, on the CPU provider (or CUDA in the GPU-only tests).
import type { BlockPrecision } from '../../graphs/moe-block.ts';
import type { ExecutionProvider } from '../../kernels/session.ts';
import { compileDeviceModel } from '../../models/compile-device.ts';
import { BlockManager, SequenceBlocks } from '../../server/engine/block-manager.ts';
import { DeviceRunner } from '../../runtime/device/device-runner.ts';
import { openDeviceSessions } from '../../runtime/device/device-sessions.ts';
import type { TinyModel } from './tiny-model.ts';

export interface OpenedDeviceRunner {
  runner: DeviceRunner;
  newCache(maxTokens?: number): SequenceBlocks;
  release(): Promise<void>;
}

/** The precisions the tests name: fp32 throughout, and the CUDA formulation (fp16 + int4). */
export const PRECISIONS = {
  fp32: { activations: 'float32', experts: { kind: 'float' }, projections: 'float' },
  fp16: { activations: 'float16', experts: { kind: 'float' }, projections: 'float' },
  // Block 32 and exact MatMulNBits: the same 4-bit weights as the per-expert int4 path at accuracy level 0.
  int4fp32: { activations: 'float32', experts: { kind: 'int4', blockSize: 32 }, projections: 'int4', int4AccuracyLevel: 0 },
  int4fp16: { activations: 'float16', experts: { kind: 'int4', blockSize: 32 }, projections: 'int4', int4AccuracyLevel: 0 },
} as const satisfies Record<string, BlockPrecision>;

export async function openDeviceRunner(
  model: TinyModel,
  precision: BlockPrecision,
  device: { provider: ExecutionProvider; deviceId?: number } = { provider: 'cpu' },
  blockSize = 16,
): Promise<OpenedDeviceRunner> {
  const compiled = compileDeviceModel({ modelDir: model.dir, precision, cacheDir: model.cacheDir });
  const sessions = await openDeviceSessions(compiled, { ...device, intraOpThreads: 1 });
  const { maxPositions } = compiled.manifest.spec;
  const numBlocks = Math.ceil((8 * maxPositions) / blockSize);
  const blocks = new BlockManager(numBlocks, blockSize);
  const runner = new DeviceRunner(sessions, { numBlocks, blockSize });
  return {
    runner,
    newCache: (maxTokens = maxPositions) => {
      const cache = new SequenceBlocks();
      blocks.allocate(cache, [], maxTokens, 0);
      return cache;
    },
    release: () => sessions.release(),
  };
}
