// ONNX Runtime calls (session runs) one decode step makes, per device, for each plan. On a GPU
// every call pays a fixed launch-and-copy cost through host memory (reference/gpu-facts.md),
// so the count, more than the bytes, sets the step time there.
//   per-expert (CPU): per layer and shard attn-in + o-proj (MLA: mla-in + attn-out on rank 0),
//     mlp-in, one call per chosen expert (each shard runs its slice of every chosen expert when
//     split; the chosen experts are dealt out when replicated); the LM head per shard.
//   fused (device)  : per layer attn-in + block on the device, the LM head; nothing on the CPU
//     but the attention over the cache, which the WebAssembly kernel does without ONNX Runtime.
// Attention by ONNX Runtime graphs (--attention onnx) adds CPU calls: one batched decode call
// per layer and shard (a sequence alone, or MLA, one per sequence).
import { isMoe, type ModelSpec } from '../../models/spec.ts';

export type Plan = 'per-expert' | 'fused';

export interface CallCountOptions {
  plan: Plan;
  /** Sequences decoding in the step (one token each). */
  batch: number;
  /** Tensor-parallel shards of the per-expert plan (1 for fused). */
  shards?: number;
  placement?: 'split' | 'replicate';
  attention?: 'wasm' | 'onnx';
}

export interface GraphCalls {
  /** Calls on the GPU (0 for the per-expert plan, which runs on the CPU). */
  device: number;
  /** Calls on the CPU provider when tokens spread over experts uniformly at random (expected value). */
  cpu: number;
  /** The same when no two tokens share an expert (the most there can be). */
  cpuMax: number;
}

/** Expected distinct experts chosen by `tokens` tokens each picking k of E uniformly at random. */
export function expectedDistinctExperts(numExperts: number, topK: number, tokens: number): number {
  return numExperts * (1 - Math.pow(1 - topK / numExperts, tokens));
}

function attentionCoreCalls(spec: ModelSpec, batch: number, attention: 'wasm' | 'onnx'): number {
  if (attention === 'wasm') return 0;
  return spec.mla || batch === 1 ? batch : 1;
}

export function decodeGraphCalls(spec: ModelSpec, opts: CallCountOptions): GraphCalls {
  const { batch } = opts;
  const attention = opts.attention ?? 'wasm';
  const core = attentionCoreCalls(spec, batch, attention);
  if (opts.plan === 'fused') {
    return { device: 2 * spec.numLayers + 1, cpu: spec.numLayers * core, cpuMax: spec.numLayers * core };
  }
  const shards = opts.shards ?? 1;
  // MLA attends on rank 0 alone; standard attention on every shard with heads.
  const attnShards = spec.mla ? 1 : Math.min(shards, spec.numKvHeads);
  let cpu = shards; // LM head
  let cpuMax = shards;
  for (const mlp of spec.mlp) {
    const fixed = 2 * attnShards + attnShards * core + shards; // attn-in + o-proj (or mla-in + attn-out), core, mlp-in
    cpu += fixed;
    cpuMax += fixed;
    if (!isMoe(mlp)) continue;
    const perExpert = opts.placement === 'replicate' ? 1 : shards;
    cpu += perExpert * expectedDistinctExperts(mlp.numRoutedExperts, mlp.numExpertsPerToken, batch);
    cpuMax += perExpert * Math.min(mlp.numRoutedExperts, batch * mlp.numExpertsPerToken);
  }
  return { device: 0, cpu: Math.round(cpu * 10) / 10, cpuMax };
}
