// One tensor-parallel shard's part of a step: its heads' attention (attention-shard.ts), its
// slice of every MLP (dense, shared experts, routed experts) and of the LM head. Rank 0 runs
// this in the engine thread, the other ranks in their shard workers; the slices' outputs add
// up (o_proj parts, MLPs) or sit side by side (logits).
import { join } from 'node:path';
import { gatherRows, groupByExpert, scatterAddWeighted } from '../../kernels/dispatch.ts';
import type { RoutingResult } from '../../kernels/gating.ts';
import { GraphSession, ort, type SessionSettings } from '../../kernels/session.ts';
import type { Manifest } from '../../models/compile.ts';
import { AttentionShard } from './attention-shard.ts';

export interface ShardLayerSessions {
  dense: GraphSession | null;
  shared: GraphSession | null;
  experts: Array<GraphSession | null>;
}

export interface ShardSessions {
  rank: number;
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
  const layers = manifest.layers.map(({ shards }) => ({
    dense: open(shards[rank].dense),
    shared: open(shards[rank].shared),
    experts: shards[rank].experts.map(open),
  }));
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
    ...layers.flatMap((l) => [l.dense, l.shared, ...l.experts].filter((s): s is GraphSession => s !== null)),
  ];
  return { rank, hiddenSize: manifest.spec.hiddenSize, layers, attention, lmHead, vocabStart: head.start, vocabEnd: head.end, all };
}

export interface MlpJob {
  layer: number;
  /** MLP input rows [numTokens, hidden]. */
  x: Float32Array;
  numTokens: number;
  /** Null for a dense layer. */
  route: RoutingResult | null;
  topK: number;
  numExperts: number;
}

/** Adds this shard's part of the layer's MLP output into `out` [numTokens, hidden]. */
export function runMlpShard(s: ShardSessions, job: MlpJob, out: Float32Array): void {
  const h = s.hiddenSize;
  const layer = s.layers[job.layer];
  const whole = (session: GraphSession | null): void => {
    if (!session) return;
    const y = session.run({ x: new ort.Tensor('float32', job.x, [job.numTokens, h]) }).y.data as Float32Array;
    for (let i = 0; i < out.length; i++) out[i] += y[i];
  };
  whole(layer.dense);
  whole(layer.shared);
  if (!job.route) return;
  for (const batch of groupByExpert(job.route, job.numTokens, job.topK, job.numExperts)) {
    const session = layer.experts[batch.expert];
    if (!session) continue;
    const x = gatherRows(job.x, h, batch.rows);
    const y = session.run({ x: new ort.Tensor('float32', x, [batch.rows.length, h]) }).y.data as Float32Array;
    scatterAddWeighted(out, h, y, batch.rows, batch.weights);
  }
}

/** This shard's logit columns for `numRows` final hidden rows: [numRows, vocabEnd - vocabStart]. */
export function runLmHeadShard(s: ShardSessions, hidden: Float32Array, numRows: number): Float32Array {
  const out = s.lmHead.run({ hidden: new ort.Tensor('float32', hidden, [numRows, s.hiddenSize]) });
  return out.logits.data as Float32Array;
}
