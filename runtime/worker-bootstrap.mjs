// Entry of the project's worker threads and benchmark children (the engine, tensor-parallel
// shards, benchmark workers). They do not inherit the tsx loader that runs the main thread,
// so register it here, then load the TypeScript module whose file URL argv[2] names.
import { register } from 'tsx/esm/api';

register();
const entry = process.argv[2];
if (!entry) throw new Error('worker-bootstrap: pass the module to run as a file URL in argv');
await import(entry);
