// What every route plugin is given: the model (possibly still loading) and the admission gate.
import type { AdmissionGate } from '../openai/generation.ts';
import type { ModelSlot } from '../served-model.ts';

export interface ServerContext {
  slot: ModelSlot;
  gate: AdmissionGate;
}
