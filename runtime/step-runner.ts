// What the engine needs of a model runner: the per-expert ModelRunner (model-runner.ts) and the
// fused DeviceRunner (device/device-runner.ts) both take a step this way.
import type { ModelSpec } from '../models/spec.ts';
import type { StepResult, StepSequence } from './step-batch.ts';

export interface StepRunner {
  readonly spec: ModelSpec;
  step(batch: StepSequence[]): StepResult;
}
