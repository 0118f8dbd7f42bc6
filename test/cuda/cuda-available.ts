// Whether the GPU-only tests can run here. Without the CUDA provider they skip, saying why;
// MOE_REQUIRE_CUDA=1 (bench/gpu-check.sh sets it) turns that into a failure.
import { checkCudaProvider } from '../../kernels/cuda-provider.ts';

function probe(): string | null {
  try {
    checkCudaProvider(Number(process.env.MOE_CUDA_DEVICE ?? 0));
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Null when CUDA runs; otherwise why not. */
export const cudaMissing = probe();

if (cudaMissing !== null) {
  if (process.env.MOE_REQUIRE_CUDA === '1') throw new Error(`MOE_REQUIRE_CUDA=1 but CUDA is not usable: ${cudaMissing}`);
  console.warn(`SKIPPING the GPU-only tests (test/cuda): ${cudaMissing}`);
}

export const cudaDevice = Number(process.env.MOE_CUDA_DEVICE ?? 0);
