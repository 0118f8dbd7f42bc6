// Synthetic checkpoints in the fused-expert layout newer transformers releases save: each MoE
// layer's experts as gate_up_proj [E, 2 * I, H] (gate rows, then up rows) and down_proj
// [E, H, I]. The values are the per-expert tensors' own, stacked, so a fused checkpoint and a
// per-expert one of the same seed hold the same model (tests compare the two).
import type { ModelWeightNames } from './family.ts';
import type { ExpectedTensor } from './checkpoint/weight-shapes.ts';
import type { ModelSpec } from './spec.ts';

/** A tensor to write: either one expected tensor or a stack of them. */
export interface TensorPlan {
  name: string;
  shape: number[];
  /** Expected tensors whose values, in this order, make up this tensor. */
  parts: ExpectedTensor[];
}

/** The checkpoint's tensors, with every fusable layer's experts replaced by their 3-D stacks. */
export function planTensors(spec: ModelSpec, names: ModelWeightNames, tensors: ExpectedTensor[], fused: boolean): TensorPlan[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const stacked = new Map<string, TensorPlan>();
  if (fused) {
    names.layers.forEach((layer, i) => {
      const mlp = spec.mlp[i];
      if (layer.mlp.kind !== 'moe' || mlp.kind !== 'moe' || layer.mlp.fusedExperts === undefined) return;
      const { experts, fusedExperts } = layer.mlp;
      const part = (name: string): ExpectedTensor => byName.get(name) ?? missing(name);
      const { numRoutedExperts: e, expertIntermediateSize: inter } = mlp;
      const h = spec.hiddenSize;
      const gateUp = { name: fusedExperts.gateUp, shape: [e, 2 * inter, h], parts: experts.flatMap((x) => [part(x.gate), part(x.up)]) };
      const down = { name: fusedExperts.down, shape: [e, h, inter], parts: experts.map((x) => part(x.down)) };
      for (const x of experts) {
        stacked.set(x.gate, gateUp);
        stacked.set(x.up, gateUp);
        stacked.set(x.down, down);
      }
    });
  }
  const plans: TensorPlan[] = [];
  const written = new Set<string>();
  for (const t of tensors) {
    const plan = stacked.get(t.name) ?? { name: t.name, shape: t.shape, parts: [t] };
    if (written.has(plan.name)) continue;
    written.add(plan.name);
    plans.push(plan);
  }
  return plans;
}

function missing(name: string): never {
  throw new Error(`fused experts: no expected tensor ${name}`);
}
