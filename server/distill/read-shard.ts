// A trainer-side reader of the distillation shards, in TypeScript (docs/distillation.md has
// the same in Python): loads a shard and prints one response position, its teacher
// distribution and, when exported, its routing.
//
//   node --import tsx server/distill/read-shard.ts OUT/shard-00000.safetensors [ROW]
import { fileURLToPath } from 'node:url';
import { readArraysFile, type TensorArray } from './safetensors-arrays.ts';

export interface Shard {
  metadata: Record<string, string>;
  ids: string[];
  get(name: string): { shape: number[]; data: TensorArray };
  has(name: string): boolean;
}

export function loadShard(file: string): Shard {
  const { metadata, tensors } = readArraysFile(file);
  const ids = JSON.parse(metadata.ids ?? '[]') as string[];
  return {
    metadata,
    ids,
    has: (name) => tensors.has(name),
    get(name) {
      const tensor = tensors.get(name);
      if (tensor === undefined) throw new Error(`${file} has no tensor ${name}`);
      return tensor;
    },
  };
}

export interface Position {
  conversation: string;
  position: number;
  token: number;
  logprob: number;
  top: Array<{ token: number; logprob: number }>;
  tailLogprob: number;
  /** exp(top logprobs) summed with exp(tail): 1 up to rounding. */
  totalProbability: number;
  /** Per MoE layer, the chosen experts and their gate weights (exports with --router). */
  router: Array<{ experts: number[]; weights: number[] }> | null;
}

/** Response row `row` of a shard. */
export function readPosition(shard: Shard, row: number): Position {
  const numRows = shard.get('token_ids').data.length;
  if (!Number.isInteger(row) || row < 0 || row >= numRows) throw new RangeError(`row ${row} is outside 0..${numRows - 1}`);
  const responseOffsets = shard.get('response_offsets').data as BigInt64Array;
  let s = 0;
  while (Number(responseOffsets[s + 1]) <= row) s++;
  const [, k] = shard.get('top_ids').shape;
  const topIds = shard.get('top_ids').data as Int32Array;
  const topLogprobs = shard.get('top_logprobs').data as Float32Array;
  const top = Array.from({ length: k }, (_, j) => ({ token: topIds[row * k + j], logprob: topLogprobs[row * k + j] })).filter(
    (t) => t.token >= 0,
  );
  const tailLogprob = (shard.get('tail_logprobs').data as Float32Array)[row];
  const position = (shard.get('response_positions').data as Int32Array)[row];
  let router: Position['router'] = null;
  if (shard.has('router_expert_ids')) {
    const [, numLayers, r] = shard.get('router_expert_ids').shape;
    const experts = shard.get('router_expert_ids').data as Int32Array;
    const weights = shard.get('router_weights').data as Float32Array;
    const token = Number((shard.get('sequence_offsets').data as BigInt64Array)[s]) + position;
    router = Array.from({ length: numLayers }, (_, layer) => {
      const at = (token * numLayers + layer) * r;
      return { experts: Array.from(experts.subarray(at, at + r)), weights: Array.from(weights.subarray(at, at + r)) };
    });
  }
  return {
    conversation: shard.ids[s],
    position,
    token: (shard.get('token_ids').data as Int32Array)[row],
    logprob: (shard.get('token_logprobs').data as Float32Array)[row],
    top,
    tailLogprob,
    totalProbability: top.reduce((sum, t) => sum + Math.exp(t.logprob), Math.exp(tailLogprob)),
    router,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, row = '0'] = process.argv.slice(2);
  if (file === undefined) {
    console.error('usage: node --import tsx server/distill/read-shard.ts SHARD.safetensors [ROW]');
    process.exit(2);
  }
  const position = readPosition(loadShard(file), Number(row));
  console.log(JSON.stringify({ ...position, top: position.top.slice(0, 5) }, null, 2));
}
