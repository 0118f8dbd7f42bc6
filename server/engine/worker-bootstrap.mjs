// Entry of the engine worker thread. Worker threads do not inherit the tsx loader that
// runs the main thread, so register it here before loading the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
