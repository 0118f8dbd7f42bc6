// The GPU-only tests (test/cuda/*.cuda.ts): the fused plan on ONNX Runtime's CUDA provider.
// `npm test` never runs them (its files are test/**/*.test.ts); bench/gpu-check.sh runs them
// with MOE_REQUIRE_CUDA=1, so a missing provider fails there instead of skipping.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/cuda/**/*.cuda.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
  },
});
