// Entry of the engine's worker threads (the engine itself, tensor-parallel shards). Worker
// threads do not inherit the tsx loader that runs the main thread, so register it here,
// then load the TypeScript module named by argv (default: the engine worker).
import { register } from 'tsx/esm/api';

register();
const entry = process.argv[2] ?? './worker.ts';
await import(new URL(entry, import.meta.url).href);
