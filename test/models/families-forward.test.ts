// The engine's forward pass against the independent float64 references (test/reference/
// moe-reference.ts, mla-reference.ts) for Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V2
// and DeepSeek-V3: fp32 logits within 1e-4 and identical expert choices for every token and MoE layer, over a 32-token prefill and 16
// decode steps, on tiny checkpoints through the real writer, compiler and ONNX Runtime.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyntheticFamily } from '../../models/synthetic.ts';
import { argmax, engineExperts, maxLogitDiff } from '../helpers/logits.ts';
import { openRunner, testTokens, type OpenedRunner, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';
import type { ReferenceStepResult } from '../reference/deepseek-reference.ts';
import { ReferenceMla } from '../reference/mla-reference.ts';
import { ReferenceMoe } from '../reference/moe-reference.ts';
import { renameTensors } from './helpers.ts';

const LOGIT_TOLERANCE = 1e-4;
const PREFILL_TOKENS = 32;
const DECODE_STEPS = 16;

interface Variant {
  family: SyntheticFamily;
  name: string;
  overrides: Record<string, unknown>;
  tensorParallel?: number;
  /** With 2 shards the tiny models' experts are replicated ('auto'); some variants split them. */
  expertPlacement?: 'split';
  /** Engine reads fused 3-D experts; the reference reads the same model saved per expert. */
  fused?: boolean;
  /** Renames the engine's checkpoint tensors (another transformers release's spelling). */
  rename?: [string, string];
}

const variants: Variant[] = [
  { family: 'mixtral', name: 'GQA 4/2, top-2 of 8 (always renormalised)', overrides: {} },
  {
    family: 'mixtral',
    name:
      'top-1 of 4, MHA, tied embeddings, linear rope, 2 shards with experts replicated; newer transformers layout (mlp., fused ' +
      'experts)',
    overrides: {
      num_local_experts: 4,
      num_experts_per_tok: 1,
      num_key_value_heads: 4,
      tie_word_embeddings: true,
      rope_scaling: { type: 'linear', factor: 2 },
    },
    tensorParallel: 2,
    fused: true,
    rename: ['.block_sparse_moe.', '.mlp.'],
  },
  { family: 'qwen2_moe', name: 'dense layer 0, gated shared expert, q/k/v biases', overrides: {} },
  {
    family: 'qwen2_moe',
    name: 'decoder_sparse_step 2, norm_topk_prob, top-3, 2 shards with experts split, fused experts',
    overrides: { num_hidden_layers: 4, mlp_only_layers: [], decoder_sparse_step: 2, norm_topk_prob: true, num_experts_per_tok: 3 },
    tensorParallel: 2,
    expertPlacement: 'split',
    fused: true,
  },
  { family: 'qwen3_moe', name: 'head_dim 32 != hidden / heads, per-head q/k norm, renormalised', overrides: {} },
  {
    family: 'qwen3_moe',
    name: 'derived head_dim, mlp_only_layers [1], no renorm, 2 shards',
    overrides: { head_dim: null, mlp_only_layers: [1], norm_topk_prob: false },
    tensorParallel: 2,
  },
  { family: 'olmoe', name: 'q/k norm over the projection, GQA, no renorm', overrides: {} },
  {
    family: 'olmoe',
    name: 'MHA, norm_topk_prob, 2 shards (each normalises the whole projection), fused experts',
    overrides: { num_key_value_heads: 4, norm_topk_prob: true },
    tensorParallel: 2,
    fused: true,
  },
  { family: 'deepseek_v2', name: 'MLA without q_lora_rank, YaRN, group-limited greedy, routed scaling 2', overrides: {} },
  {
    family: 'deepseek_v2',
    name: 'greedy, norm_topk_prob (then unscaled), no rope scaling, 2 shards',
    overrides: { topk_method: 'greedy', norm_topk_prob: true, rope_scaling: null },
    tensorParallel: 2,
  },
  { family: 'deepseek_v3', name: 'q_lora_rank, sigmoid + correction bias, noaux_tc groups, renorm, scaling 2.5', overrides: {} },
  {
    family: 'deepseek_v3',
    name: 'one group, top-3, YaRN mscale != mscale_all_dim, 2 shards with experts split',
    overrides: {
      n_group: 1,
      topk_group: 1,
      num_experts_per_tok: 3,
      rope_scaling: { type: 'yarn', factor: 8, original_max_position_embeddings: 64, mscale: 1, mscale_all_dim: 0.8 },
    },
    tensorParallel: 2,
    expertPlacement: 'split',
  },
];

interface Reference {
  newSequence(): { forward(tokens: number[]): ReferenceStepResult };
}

function loadReference(family: SyntheticFamily, dir: string): Reference {
  return family === 'deepseek_v2' || family === 'deepseek_v3' ? ReferenceMla.load(dir) : ReferenceMoe.load(dir);
}

describe.each(variants)(
  '$family fp32 forward matches the reference: $name',
  ({ family, name, overrides, tensorParallel, expertPlacement, fused, rename }) => {
    let model: TinyModel;
    let perExpert: TinyModel | null = null;
    let opened: OpenedRunner;
    let reference: Reference;

    beforeAll(async () => {
      model = writeTinyModel(overrides, 7, family, fused ?? false);
      if (fused) perExpert = writeTinyModel(overrides, 7, family, false);
      if (rename) renameTensors(model.dir, ...rename);
      opened = await openRunner(model, 'fp32', 4, tensorParallel ?? 1, 16, 'wasm', expertPlacement);
      reference = loadReference(family, (perExpert ?? model).dir);
    });
    afterAll(async () => {
      await opened?.release();
      model?.remove();
      perExpert?.remove();
    });

    it('prefill and decode logits within 1e-4, identical experts', () => {
      const topK = opened.runner.spec.mlp.reduce((k, m) => (m.kind === 'moe' ? m.numExpertsPerToken : k), 0);
      const cache = opened.newCache();
      const refSeq = reference.newSequence();
      let tokens = testTokens(PREFILL_TOKENS, 3);
      let worst = 0;
      for (let step = 0; step <= DECODE_STEPS; step++) {
        const result = opened.runner.step([{ tokens, cache, logits: 'all' }]);
        const expected = refSeq.forward(tokens);
        expect(result.moeLayers).toEqual(expected.moeLayers);
        expect(engineExperts(result, topK)).toEqual(expected.experts);
        worst = Math.max(worst, maxLogitDiff(result.logits, expected.logits));
        tokens = [argmax(expected.logits[expected.logits.length - 1])];
      }
      console.log(`[families] ${family} (${name}): max |logit diff| ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(LOGIT_TOLERANCE);
    });
  },
);
