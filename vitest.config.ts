import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Model tests compile tiny checkpoints and run ONNX Runtime sessions: seconds, not ms.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: more forks only make the ONNX Runtime thread pools fight.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
