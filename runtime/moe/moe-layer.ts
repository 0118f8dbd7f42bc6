// One shard's feed-forward block of a decoder layer, in vLLM's fused-MoE stage names:
//   mlp-in (graph): post-attention RMSNorm -> router logits, and this shard's slice of the
//                   dense MLP or of the shared experts (Qwen2-MoE's sigmoid gate included)
//   Router   (router.ts)   : logits -> each token's top-k experts and weights
//   Dispatch (dispatch.ts) : token rows grouped per expert (and dealt out among the shards
//                            when every shard holds every expert whole)
//   Experts  (experts.ts)  : one subgraph call per chosen expert, on all its rows
//   Combine  (combine.ts)  : weighted sum into the token rows, with the shared/dense output
// Every shard normalises and routes the layer's rows itself: the same graph on the same rows
// routes every shard alike, and no shard idles while another routes.
import { ort } from '../../kernels/session.ts';
import type { ShardSessions } from '../tp/shard-sessions.ts';
import { addInto } from './combine.ts';
import { dealBatches, groupByExpert } from './dispatch.ts';
import { runExperts } from './experts.ts';
import { type RoutingResult, routeTokens } from './router.ts';

export interface FeedForwardJob {
  layer: number;
  /** The residual rows after attention [numTokens, hidden]. */
  hidden: Float32Array;
  numTokens: number;
}

/**
 * Adds this shard's part of the layer's feed-forward output into `out` [numTokens, hidden]
 * (which may be `job.hidden` itself: the rows are read before anything is added). Returns the
 * routing of the rows, null for a dense layer.
 */
export function runFeedForward(s: ShardSessions, job: FeedForwardJob, out: Float32Array): RoutingResult | null {
  const h = s.hiddenSize;
  const { numTokens } = job;
  const { mlpIn, gating, experts } = s.layers[job.layer];
  const start = mlpIn.run({ hidden: new ort.Tensor('float32', job.hidden, [numTokens, h]) });
  const x = start.mlp_in.data as Float32Array;
  if (start.y) addInto(out, start.y.data as Float32Array);
  if (!gating) return null;
  const route = routeTokens(start.router_logits.data as Float32Array, numTokens, gating);
  const batches = groupByExpert(route, numTokens, gating.topK, gating.numExperts);
  // Replicated experts: this shard runs its share of the chosen experts, whole.
  const dealt = s.replicatedExperts ? dealBatches(batches, s.numShards) : null;
  runExperts(experts, batches, x, h, out, (i) => dealt === null || dealt[i] === s.rank);
  return route;
}
