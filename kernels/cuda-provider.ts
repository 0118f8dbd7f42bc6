// Whether ONNX Runtime's CUDA execution provider loads here, checked once at startup so that
// --device cuda fails early with a message that says how to install it, instead of at the first
// graph (or, worse, by quietly running on the CPU: sessions.ts disables the CPU fallback).
//
// The npm package bundles the CPU provider only. Its install script (which the project's .npmrc
// never runs by itself) downloads the CUDA 12 build into bin/napi-v6/<platform>/<arch>/ (libonnxruntime_providers_cuda.so and
// libonnxruntime_providers_shared.so beside libonnxruntime.so.1) when ONNXRUNTIME_NODE_INSTALL
// allows it; the provider then needs the CUDA 12 runtime, cuBLAS and cuDNN 9 on the loader path.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { GraphSession, ort } from './session.ts';

export class CudaProviderError extends Error {
  override name = 'CudaProviderError';
}

/** Where onnxruntime-node keeps its native libraries on this platform. */
export function ortBinaryDir(): string {
  const packageJson = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
  return join(dirname(packageJson), 'bin', 'napi-v6', process.platform, process.arch);
}

export const CUDA_PROVIDER_LIBRARIES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'] as const;

/** How to get the provider, for error messages and docs. */
export function cudaInstallHint(dir: string = ortBinaryDir()): string {
  return (
    `Install ONNX Runtime's CUDA provider into ${dir}: run onnxruntime-node's install script on purpose, ` +
    `\`ONNXRUNTIME_NODE_INSTALL=true node node_modules/onnxruntime-node/script/install.js\` (the project's .npmrc runs ` +
    `no dependency install scripts), on a machine that can download it. It needs CUDA 12 (libcudart.so.12, libcublas.so.12, ` +
    `libcublasLt.so.12) and cuDNN 9 on the library path: check with \`ldd ${join(dir, CUDA_PROVIDER_LIBRARIES[1])}\`.`
  );
}

/** The provider libraries missing from `dir` (empty when both are there). */
export function missingCudaLibraries(dir: string = ortBinaryDir()): string[] {
  return CUDA_PROVIDER_LIBRARIES.filter((file) => !existsSync(join(dir, file)));
}

/**
 * Creates a one-node graph on CUDA device `deviceId` with the CPU fallback disabled and runs
 * it; throws CudaProviderError naming what failed and how to install the provider.
 */
export function checkCudaProvider(deviceId = 0): void {
  const dir = ortBinaryDir();
  const missing = missingCudaLibraries(dir);
  if (missing.length > 0) {
    throw new CudaProviderError(
      `--device cuda: ONNX Runtime's CUDA execution provider is not installed (${missing.join(', ')} missing). ${cudaInstallHint(dir)}`,
    );
  }
  const scratch = mkdtempSync(join(tmpdir(), 'moe-cuda-check-'));
  try {
    const file = join(scratch, 'relu.onnx');
    writeFileSync(file, reluModel());
    let session: GraphSession;
    try {
      session = new GraphSession(file, { provider: 'cuda', deviceId, intraOpThreads: 1 });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new CudaProviderError(
        `--device cuda:${deviceId}: the CUDA execution provider did not load (${reason}). ${cudaInstallHint(dir)}`,
      );
    }
    try {
      const y = session.run({ x: new ort.Tensor('float32', Float32Array.of(-1, 2, -3, 4), [4]) }).y.data as Float32Array;
      if (Array.from(y).join(',') !== '0,2,0,4')
        throw new CudaProviderError(`--device cuda:${deviceId}: a test graph gave a wrong result (${Array.from(y).join(', ')})`);
    } finally {
      session.release();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** A model of one Relu over float32 [4]: every CUDA build has that kernel. */
function reluModel(): Uint8Array {
  const { onnx } = onnxProto;
  const value = (name: string) => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 4 }] } } },
  });
  const graph = { name: 'cuda-check', node: [{ opType: 'Relu', input: ['x'], output: ['y'] }], input: [value('x')], output: [value('y')] };
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 10, opsetImport: [{ domain: '', version: 21 }], graph })).finish();
}
