// What every route plugin is given: the model (possibly still loading), the admission gate
// and the metrics registry.
import type { AdmissionGate } from '../openai/generation.ts';
import type { ServerMetrics } from '../metrics/server-metrics.ts';
import type { ModelSlot } from '../served-model.ts';

export interface ServerContext {
  slot: ModelSlot;
  gate: AdmissionGate;
  metrics: ServerMetrics;
}
