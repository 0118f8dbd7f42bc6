// Experts: each routed expert's subgraph runs once per step on all the token rows dispatched
// to it, and its output is combined into those rows at once.
import { GraphSession, ort } from '../../kernels/session.ts';
import { scatterAddWeighted } from './combine.ts';
import { type ExpertBatch, gatherRows } from './dispatch.ts';

/**
 * Runs `batches` (experts in ascending id, as groupByExpert makes them) over the normalised
 * rows `x` [numTokens, h] and adds each expert's weighted output into `out`. `sessions[e]` is
 * null for an expert this shard does not hold; `runs(i)` says whether batch i is this
 * shard's to run (replicated experts are dealt out among the shards).
 */
export function runExperts(
  sessions: ReadonlyArray<GraphSession | null>,
  batches: readonly ExpertBatch[],
  x: Float32Array,
  h: number,
  out: Float32Array,
  runs: (batch: number) => boolean = () => true,
): void {
  const numTokens = x.length / h;
  for (const [i, batch] of batches.entries()) {
    const session = sessions[batch.expert];
    if (!session || !runs(i)) continue;
    // One row (a decode step of one sequence) needs no gathering.
    const rows = numTokens === 1 ? x : gatherRows(x, h, batch.rows);
    const y = session.run({ x: new ort.Tensor('float32', rows, [batch.rows.length, h]) }).y.data as Float32Array;
    scatterAddWeighted(out, h, y, batch.rows, batch.weights);
  }
}
