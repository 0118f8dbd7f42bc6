// What GET /v1/models says about the loaded model beyond the OpenAI fields: its family
// (Hugging Face model_type), expert counts, routing and what its KV cache holds per token.
// Clients comparing MoE designs (fine-grained + shared vs flat top-2) read it from here.
import { Type, type Static } from '@sinclair/typebox';
import { describeRouting } from '../models/routing.ts';
import { isMoe, type ModelSpec } from '../models/spec.ts';
import { kvBytesPerToken } from '../runtime/attention/kv-cache-shape.ts';

const Routing = Type.Object({
  scoring: Type.Union([Type.Literal('softmax'), Type.Literal('sigmoid')]),
  top_k: Type.Integer(),
  num_routed_experts: Type.Integer(),
  renormalize: Type.Boolean(),
  routed_scaling_factor: Type.Number(),
  correction_bias: Type.Boolean(),
  groups: Type.Union([
    Type.Object({
      num_groups: Type.Integer(),
      topk_groups: Type.Integer(),
      group_score: Type.Union([Type.Literal('max'), Type.Literal('top2-sum')]),
    }),
    Type.Null(),
  ]),
  shared_expert_intermediate_size: Type.Integer(),
  shared_expert_gate: Type.Boolean(),
});

export const ModelDescriptionSchema = Type.Object({
  family: Type.String(),
  num_layers: Type.Integer(),
  moe_layers: Type.Integer(),
  num_routed_experts: Type.Integer(),
  num_experts_per_token: Type.Integer(),
  expert_intermediate_size: Type.Integer(),
  shared_expert_intermediate_size: Type.Integer(),
  /** The routing of the MoE layers (every family here routes all of them alike); null when dense. */
  routing: Type.Union([Routing, Type.Null()]),
  attention: Type.Union([Type.Literal('multi-head'), Type.Literal('grouped-query'), Type.Literal('multi-head-latent')]),
  kv_cache_bytes_per_token: Type.Integer(),
  plain_kv_cache_bytes_per_token: Type.Integer(),
});

export type ModelDescription = Static<typeof ModelDescriptionSchema>;

export function describeModel(spec: ModelSpec): ModelDescription {
  const moe = spec.mlp.filter(isMoe);
  const first = moe[0];
  const bytes = kvBytesPerToken(spec);
  return {
    family: spec.modelType,
    num_layers: spec.numLayers,
    moe_layers: moe.length,
    num_routed_experts: first?.numRoutedExperts ?? 0,
    num_experts_per_token: first?.numExpertsPerToken ?? 0,
    expert_intermediate_size: first?.expertIntermediateSize ?? 0,
    shared_expert_intermediate_size: first?.sharedIntermediateSize ?? 0,
    routing: first ? describeRouting(first) : null,
    attention: spec.mla ? 'multi-head-latent' : spec.numKvHeads === spec.numHeads ? 'multi-head' : 'grouped-query',
    kv_cache_bytes_per_token: bytes.cache,
    plain_kv_cache_bytes_per_token: bytes.plainKv,
  };
}
