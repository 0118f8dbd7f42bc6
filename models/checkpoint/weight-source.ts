// The compile step's view of a checkpoint: reads tensors by the family's names, finds experts
// that newer transformers releases save fused as 3-D tensors, and refuses a checkpoint that
// holds tensors the model does not use. An extra tensor almost always means config.json and
// the weights disagree (another layer count, expert count or family), and silently ignoring
// it would serve a different model than the one saved.
import { CheckpointError } from '../errors.ts';
import type { FusedExpertNames, ModelWeightNames } from '../family.ts';
import type { ModelSpec } from '../spec.ts';
import type { CheckpointReader } from './safetensors.ts';
import { expectedTensors } from './weight-shapes.ts';

export type ReadWeight = (name: string, shape: number[]) => Float32Array;

/** Buffers Hugging Face itself drops on load (old Llama-style checkpoints saved RoPE tables). */
const IGNORED = /\.rotary_emb\.inv_freq$/;

/** A per-expert 2-D tensor that lives inside a fused 3-D one. */
interface FusedSlice {
  tensor: string;
  expert: number;
  /** Rows [rowStart, rowStart + rows) of that expert's [rowsPerExpert, cols] matrix. */
  rowStart: number;
  rows: number;
  rowsPerExpert: number;
  cols: number;
  numExperts: number;
}

type Resolve = (name: string) => string;

/** The checkpoint's spelling of `name`: itself, or the first rename the checkpoint holds. */
function resolver(reader: CheckpointReader, renames: ReadonlyArray<readonly [string, string]>): Resolve {
  return (name) => {
    if (reader.has(name)) return name;
    for (const [ours, theirs] of renames) {
      const other = name.replace(ours, theirs);
      if (other !== name && reader.has(other)) return other;
    }
    return name;
  };
}

function fusedSlices(spec: ModelSpec, names: ModelWeightNames, reader: CheckpointReader, resolve: Resolve): Map<string, FusedSlice> {
  const slices = new Map<string, FusedSlice>();
  names.layers.forEach((layer, i) => {
    const mlp = spec.mlp[i];
    const fused: FusedExpertNames | undefined = layer.mlp.kind === 'moe' ? layer.mlp.fusedExperts : undefined;
    if (layer.mlp.kind !== 'moe' || mlp.kind !== 'moe' || fused === undefined || !reader.has(resolve(fused.gateUp))) return;
    const [gateUp, down] = [resolve(fused.gateUp), resolve(fused.down)];
    const { numRoutedExperts: e, expertIntermediateSize: inter } = mlp;
    const h = spec.hiddenSize;
    layer.mlp.experts.forEach((expert, j) => {
      const common = { expert: j, numExperts: e };
      slices.set(expert.gate, { ...common, tensor: gateUp, rowStart: 0, rows: inter, rowsPerExpert: 2 * inter, cols: h });
      slices.set(expert.up, { ...common, tensor: gateUp, rowStart: inter, rows: inter, rowsPerExpert: 2 * inter, cols: h });
      slices.set(expert.down, { ...common, tensor: down, rowStart: 0, rows: h, rowsPerExpert: h, cols: inter });
    });
  });
  return slices;
}

/** model.layers.{i}.* for the trailing layers the spec says inference skips. */
function isUnusedLayer(name: string, spec: ModelSpec): boolean {
  const match = /^model\.layers\.(\d+)\./.exec(name);
  if (match === null || !spec.unusedTrailingLayers) return false;
  const layer = Number(match[1]);
  return layer >= spec.numLayers && layer < spec.numLayers + spec.unusedTrailingLayers;
}

/** Throws CheckpointError naming the first tensor the model does not use and its file. */
function checkNoExtraTensors(reader: CheckpointReader, expected: Set<string>, spec: ModelSpec): void {
  const modelType = spec.modelType;
  const extra = reader.names().filter((n) => !expected.has(n) && !IGNORED.test(n) && !isUnusedLayer(n, spec));
  if (extra.length === 0) return;
  const more = extra.length > 1 ? ` (and ${extra.length - 1} more)` : '';
  throw new CheckpointError(
    reader.info(extra[0]).file,
    extra[0],
    `is not part of a "${modelType}" model with this config.json${more}; config.json and the weights disagree`,
  );
}

/** The weight reader compile uses; checks the tensor set first. */
export function checkpointWeights(
  reader: CheckpointReader,
  spec: ModelSpec,
  names: ModelWeightNames,
  renames: ReadonlyArray<readonly [string, string]> = [],
): ReadWeight {
  const resolve = resolver(reader, renames);
  const slices = fusedSlices(spec, names, reader, resolve);
  const expected = new Set<string>();
  for (const t of expectedTensors(spec, names)) {
    const slice = slices.get(t.name);
    expected.add(slice ? slice.tensor : resolve(t.name));
  }
  checkNoExtraTensors(reader, expected, spec);
  // Experts are read in order, so keeping the last fused tensor reads each one once.
  let cached: { name: string; data: Float32Array } | null = null;
  return (name, shape) => {
    const slice = slices.get(name);
    if (slice === undefined) return reader.readFloat32(resolve(name), shape);
    if (cached?.name !== slice.tensor) {
      cached = { name: slice.tensor, data: reader.readFloat32(slice.tensor, [slice.numExperts, slice.rowsPerExpert, slice.cols]) };
    }
    const start = (slice.expert * slice.rowsPerExpert + slice.rowStart) * slice.cols;
    return cached.data.slice(start, start + slice.rows * slice.cols);
  };
}
