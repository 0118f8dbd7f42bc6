// One tensor-parallel shard's sessions: its heads' attention (attention-shard.ts), its slice
// of every feed-forward block (dense, shared experts, routed experts: moe/moe-layer.ts runs
// them) and of the LM head. Rank 0 opens these in the engine thread, the other ranks in
// their shard workers; the slices' outputs add up (o_proj parts, MLPs) or sit side by side
// (logits).
import { join } from 'node:path';
import type { GatingConfig } from '../moe/router.ts';
import { GraphSession, ort, type SessionSettings } from '../../kernels/session.ts';
import type { Manifest } from '../../models/compile.ts';
import { gatingConfigFor } from '../moe/router-config.ts';
import { isMoe } from '../../models/spec.ts';
import { AttentionShard } from '../attention/attention-shard.ts';

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
export function openShardSessions(
  dir: string,
  manifest: Manifest,
  rank: number,
  settings: SessionSettings,
  kernel: WebAssembly.Module | null,
): ShardSessions {
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
  const attention = new AttentionShard(
    manifest.spec,
    {
      kvHeads,
      core: open(core),
      decode: open(decode),
      attnIn: manifest.layers.map(({ shards }) => open(shards[rank].attnIn)),
      oProj: manifest.layers.map(({ shards }) => open(shards[rank].oProj)),
    },
    kernel,
  );
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

/** This shard's logit columns for `numRows` final hidden rows: [numRows, vocabEnd - vocabStart]. */
export function runLmHeadShard(s: ShardSessions, hidden: Float32Array, numRows: number): Float32Array {
  const out = s.lmHead.run({ hidden: new ort.Tensor('float32', hidden, [numRows, s.hiddenSize]) });
  return out.logits.data as Float32Array;
}
