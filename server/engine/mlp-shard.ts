// One tensor-parallel shard's part of a step: its heads' attention (attention-shard.ts), its
// slice of every MLP (dense, shared experts, routed experts) and of the LM head. Rank 0 runs
// this in the engine thread, the other ranks in their shard workers; the slices' outputs add
// up (o_proj parts, MLPs) or sit side by side (logits). Each shard normalises and routes the
// layer's rows itself (mlp-in): the same graph on the same rows routes every shard alike, and
// no shard idles while another routes.
import { join } from 'node:path';
import { dealBatches, gatherRows, groupByExpert, scatterAddWeighted } from '../../kernels/dispatch.ts';
import { type GatingConfig, type RoutingResult, routeTokens } from '../../kernels/gating.ts';
import { GraphSession, ort, type SessionSettings } from '../../kernels/session.ts';
import type { Manifest } from '../../models/compile.ts';
import { gatingConfigFor } from '../../models/routing.ts';
import { isMoe } from '../../models/spec.ts';
import { AttentionShard } from './attention-shard.ts';

export interface ShardLayerSessions {
  /** Post-attention norm, router and this shard's dense or shared-expert slice (mlp-in). */
  mlpIn: GraphSession;
  /** Null for a dense layer. */
  gating: GatingConfig | null;
  experts: Array<GraphSession | null>;
}

export interface ShardSessions {
  rank: number;
  numShards: number;
  /** Every shard holds every routed expert whole and runs a share of them (ExpertPlacement). */
  replicatedExperts: boolean;
  hiddenSize: number;
  layers: ShardLayerSessions[];
  attention: AttentionShard;
  lmHead: GraphSession;
  /** Vocabulary columns [start, end) of this shard's logits. */
  vocabStart: number;
  vocabEnd: number;
  all(): GraphSession[];
}

/** `kernel`: the WebAssembly attention kernel for this shard's cache, or null for ONNX Runtime alone. */
export function openShardSessions(dir: string, manifest: Manifest, rank: number, settings: SessionSettings, kernel: WebAssembly.Module | null): ShardSessions {
  const open = (file: string | null): GraphSession | null => (file === null ? null : new GraphSession(join(dir, file), settings));
  const layers = manifest.layers.map(({ shards, correctionBias }, i): ShardLayerSessions => {
    const mlp = manifest.spec.mlp[i];
    return {
      mlpIn: new GraphSession(join(dir, shards[rank].mlpIn), settings),
      gating: isMoe(mlp) ? gatingConfigFor(mlp, correctionBias ? Float32Array.from(correctionBias) : undefined) : null,
      experts: shards[rank].experts.map(open),
    };
  });
  const { kvHeads, core, decode } = manifest.attention[rank];
  const attention = new AttentionShard(manifest.spec, {
    kvHeads,
    core: open(core),
    decode: open(decode),
    attnIn: manifest.layers.map(({ shards }) => open(shards[rank].attnIn)),
    oProj: manifest.layers.map(({ shards }) => open(shards[rank].oProj)),
  }, kernel);
  const head = manifest.lmHead[rank];
  const lmHead = new GraphSession(join(dir, head.file), settings);
  const all = (): GraphSession[] => [
    lmHead,
    ...attention.all(),
    ...layers.flatMap((l) => [l.mlpIn, ...l.experts].filter((s): s is GraphSession => s !== null)),
  ];
  return {
    rank,
    numShards: manifest.tensorParallel,
    replicatedExperts: manifest.expertPlacement === 'replicate',
    hiddenSize: manifest.spec.hiddenSize,
    layers,
    attention,
    lmHead,
    vocabStart: head.start,
    vocabEnd: head.end,
    all,
  };
}

export interface MlpJob {
  layer: number;
  /** The residual rows after attention [numTokens, hidden]. */
  hidden: Float32Array;
  numTokens: number;
}

/**
 * Adds this shard's part of the layer's MLP output into `out` [numTokens, hidden] (which may be
 * `job.hidden` itself: the rows are read before anything is added). Returns the routing of the
 * rows, null for a dense layer.
 */
export function runMlpShard(s: ShardSessions, job: MlpJob, out: Float32Array): RoutingResult | null {
  const h = s.hiddenSize;
  const { numTokens } = job;
  const { mlpIn, gating, experts } = s.layers[job.layer];
  const start = mlpIn.run({ hidden: new ort.Tensor('float32', job.hidden, [numTokens, h]) });
  const x = start.mlp_in.data as Float32Array;
  if (start.y) {
    const y = start.y.data as Float32Array;
    for (let i = 0; i < out.length; i++) out[i] += y[i];
  }
  if (!gating) return null;
  const route = routeTokens(start.router_logits.data as Float32Array, numTokens, gating);
  const { topK, numExperts } = gating;
  const batches = groupByExpert(route, numTokens, topK, numExperts);
  // Replicated experts: this shard runs its share of the chosen experts, whole.
  const dealt = s.replicatedExperts ? dealBatches(batches, s.numShards) : null;
  for (const [i, batch] of batches.entries()) {
    const session = experts[batch.expert];
    if (!session || (dealt && dealt[i] !== s.rank)) continue;
    // One row (a decode step of one sequence) needs no gathering.
    const rows = numTokens === 1 ? x : gatherRows(x, h, batch.rows);
    const y = session.run({ x: new ort.Tensor('float32', rows, [batch.rows.length, h]) }).y.data as Float32Array;
    scatterAddWeighted(out, h, y, batch.rows, batch.weights);
  }
  return route;
}

/**
 * A checksum of a routing's expert choices (FNV-1a over the ids), 0 for none: rank 0 compares
 * every shard's with its own, so shards that ever routed apart fail the step loudly instead of
 * each computing its slices of different experts.
 */
export function routingChecksum(route: RoutingResult | null): number {
  if (!route) return 0;
  let hash = 0x811c9dc5;
  for (const id of route.expertIds) hash = Math.imul(hash ^ id, 0x01000193);
  return hash | 0;
}

/** This shard's logit columns for `numRows` final hidden rows: [numRows, vocabEnd - vocabStart]. */
export function runLmHeadShard(s: ShardSessions, hidden: Float32Array, numRows: number): Float32Array {
  const out = s.lmHead.run({ hidden: new ort.Tensor('float32', hidden, [numRows, s.hiddenSize]) });
  return out.logits.data as Float32Array;
}
