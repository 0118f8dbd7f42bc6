// Dispatch: group the token rows routed to each expert so every expert runs once per step on
// all of its tokens (and, with experts replicated on every shard, deal the groups out among
// the shards). combine.ts adds the experts' outputs back into token order.
import type { RoutingResult } from './router.ts';

/** The token rows routed to one expert and the gate weight of each. */
export interface ExpertBatch {
  expert: number;
  rows: Int32Array;
  weights: Float32Array;
}

function checkExpertId(expert: number, numExperts: number, at: number): void {
  if (!(expert >= 0 && expert < numExperts)) {
    throw new RangeError(`routing entry ${at} names expert ${expert}, outside [0, ${numExperts})`);
  }
}

/** Counts per expert into `counts` (zeroed first). */
function fillCounts(expertIds: Int32Array, size: number, numExperts: number, counts: Int32Array | Float64Array): void {
  if (expertIds.length < size) throw new RangeError(`routing holds ${expertIds.length} entries, need ${size}`);
  counts.fill(0, 0, numExperts);
  for (let i = 0; i < size; i++) {
    const expert = expertIds[i];
    checkExpertId(expert, numExperts, i);
    counts[expert]++;
  }
}

/**
 * Deals a step's expert batches out among `ranks` shards that each hold every expert whole:
 * the batch with the most rows first, each to the shard with the least work so far (a call's
 * fixed cost counted as two rows), ties to the lower rank. Deterministic in its input, so
 * shards that routed alike deal alike without talking. Returns each batch's rank.
 */
export function dealBatches(batches: ExpertBatch[], ranks: number): Int32Array {
  const order = batches
    .map((_, i) => i)
    .sort((a, b) => batches[b].rows.length - batches[a].rows.length || batches[a].expert - batches[b].expert);
  const load = new Float64Array(ranks);
  const rankOf = new Int32Array(batches.length);
  for (const i of order) {
    let best = 0;
    for (let r = 1; r < ranks; r++) if (load[r] < load[best]) best = r;
    rankOf[i] = best;
    load[best] += 2 + batches[i].rows.length;
  }
  return rankOf;
}

/**
 * Groups routing entries by expert (a counting sort). Returns only experts with at least one
 * token, in ascending expert id; each batch's rows ascend. Batches are views into two shared
 * buffers, so the whole grouping costs four allocations plus the batch objects.
 */
export function groupByExpert(routing: RoutingResult, numTokens: number, topK: number, numExperts: number): ExpertBatch[] {
  const size = numTokens * topK;
  if (routing.weights.length < size) throw new RangeError(`routing holds ${routing.weights.length} weights, need ${size}`);
  const counts = new Int32Array(numExperts);
  fillCounts(routing.expertIds, size, numExperts, counts);
  // starts[e] = where expert e's rows begin; advanced as rows are written.
  const starts = new Int32Array(numExperts);
  for (let e = 1; e < numExperts; e++) starts[e] = starts[e - 1] + counts[e - 1];
  const rows = new Int32Array(size);
  const weights = new Float32Array(size);
  const cursor = starts.slice();
  // Token-major input, so each expert's rows come out ascending.
  for (let i = 0; i < size; i++) {
    const at = cursor[routing.expertIds[i]]++;
    rows[at] = (i / topK) | 0;
    weights[at] = routing.weights[i];
  }
  const batches: ExpertBatch[] = [];
  for (let e = 0; e < numExperts; e++) {
    if (counts[e] === 0) continue;
    const begin = starts[e];
    const end = begin + counts[e];
    batches.push({ expert: e, rows: rows.subarray(begin, end), weights: weights.subarray(begin, end) });
  }
  return batches;
}

/** Copies src rows `rows` ([*, width]) into out ([rows.length, width]). */
export function gatherRows(src: Float32Array, width: number, rows: Int32Array, out?: Float32Array): Float32Array {
  const size = rows.length * width;
  const result = out ?? new Float32Array(size);
  if (result.length < size) throw new RangeError(`gather output holds ${result.length} values, need ${size}`);
  const numSrcRows = Math.floor(src.length / width);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    if (!(row >= 0 && row < numSrcRows)) throw new RangeError(`row ${row} outside [0, ${numSrcRows})`);
    // A subarray view per row is one small object; set() then copies the row as a block,
    // which beats an element loop at hidden sizes in the thousands.
    result.set(src.subarray(row * width, row * width + width), i * width);
  }
  return result;
}

/** Tokens routed to each expert this step (overwrites `out`); for expert-load metrics. */
export function countTokensPerExpert(routing: RoutingResult, numTokens: number, topK: number, numExperts: number): Int32Array;
export function countTokensPerExpert<T extends Float64Array | Int32Array>(
  routing: RoutingResult,
  numTokens: number,
  topK: number,
  numExperts: number,
  out: T,
): T;
export function countTokensPerExpert(
  routing: RoutingResult,
  numTokens: number,
  topK: number,
  numExperts: number,
  out?: Float64Array | Int32Array,
): Float64Array | Int32Array {
  const counts = out ?? new Int32Array(numExperts);
  if (counts.length < numExperts) throw new RangeError(`count output holds ${counts.length} entries, need ${numExperts}`);
  fillCounts(routing.expertIds, numTokens * topK, numExperts, counts);
  return counts;
}
