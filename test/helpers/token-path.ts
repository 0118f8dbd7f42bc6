// The benchmarks' token paths through documents (bench/token-path.ts), for tests.
export * from '../../bench/token-path.ts';
