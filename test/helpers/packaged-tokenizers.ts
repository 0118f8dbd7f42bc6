// The benchmarks' real packaged tokenizers (bench/packaged-tokenizers.ts), for tests.
export * from '../../bench/packaged-tokenizers.ts';
