// Streams tensors into safetensors files. The header is computed from the shapes first, then
// each tensor's values are produced, converted and appended in order, so memory holds one
// tensor at a time however large the checkpoint. Large checkpoints can be split into shards
// with a model.safetensors.index.json, the layout transformers' save_pretrained writes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dtypeByteSize, encodeFromFloat32, type FloatDtype } from './dtype.ts';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from './safetensors.ts';

export interface TensorToWrite {
  name: string;
  dtype: FloatDtype;
  shape: number[];
}

/** Returns the float32 values of `tensor` (row-major, numel long); `index` is its list position. */
export type ProduceTensor = (tensor: TensorToWrite, index: number) => Float32Array;

export interface CheckpointWriteOptions {
  /** Split into shards of at most this many data bytes; a single file when absent or enough. */
  maxShardBytes?: number;
  /** Written into every file's __metadata__ (transformers writes {"format": "pt"}). */
  metadata?: Record<string, string>;
  /** Called after each tensor is written, with the count done and the total. */
  onTensorWritten?: (done: number, total: number) => void;
}

export function tensorByteLength(tensor: TensorToWrite): number {
  return numelOf(tensor.shape) * (dtypeByteSize(tensor.dtype) ?? 4);
}

/** Writes one safetensors file at `file`. */
export function writeSafetensors(file: string, tensors: TensorToWrite[], produce: ProduceTensor, metadata?: Record<string, string>): void {
  writeFileOfTensors(file, tensors, produce, { metadata }, 0, tensors.length);
}

/**
 * Writes `tensors` into `dir` as model.safetensors, or as model-0000i-of-0000n.safetensors
 * shards plus model.safetensors.index.json when they exceed `maxShardBytes`. Files of the
 * other layout left in `dir` by an earlier write are removed so readers cannot pick them up.
 * Returns the paths written.
 */
export function writeSafetensorsCheckpoint(
  dir: string,
  tensors: TensorToWrite[],
  produce: ProduceTensor,
  options: CheckpointWriteOptions = {},
): string[] {
  fs.mkdirSync(dir, { recursive: true });
  removeExistingWeights(dir);
  const shards = planShards(tensors, options.maxShardBytes);
  if (shards.length <= 1) {
    const file = path.join(dir, SINGLE_FILE_NAME);
    writeFileOfTensors(file, tensors, produce, options, 0, tensors.length);
    return [file];
  }
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  let first = 0;
  shards.forEach((shard, i) => {
    const name = `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
    for (const tensor of shard) weightMap[tensor.name] = name;
    const file = path.join(dir, name);
    writeFileOfTensors(file, shard, produce, options, first, tensors.length);
    files.push(file);
    first += shard.length;
  });
  const totalSize = tensors.reduce((sum, t) => sum + tensorByteLength(t), 0);
  const indexFile = path.join(dir, INDEX_FILE_NAME);
  fs.writeFileSync(indexFile, `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`);
  return [...files, indexFile];
}

/** Header bytes: JSON padded with spaces to a multiple of 8 so the data section is aligned. */
export function encodeHeader(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = metadata;
  let offset = 0;
  for (const tensor of tensors) {
    const length = tensorByteLength(tensor);
    header[tensor.name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Writes `own` into one file; `first` is the list position of own[0] among `total` tensors. */
function writeFileOfTensors(
  file: string,
  own: TensorToWrite[],
  produce: ProduceTensor,
  options: CheckpointWriteOptions,
  first: number,
  total: number,
): void {
  const fd = fs.openSync(file, 'w');
  try {
    writeAll(fd, encodeHeader(own, options.metadata));
    own.forEach((tensor, i) => {
      const values = produce(tensor, first + i);
      const numel = numelOf(tensor.shape);
      if (values.length !== numel) {
        throw new Error(`${file}: produced ${values.length} values for tensor "${tensor.name}"; shape needs ${numel}`);
      }
      writeAll(fd, encodeFromFloat32(tensor.dtype, values));
      options.onTensorWritten?.(first + i + 1, total);
    });
  } finally {
    fs.closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += fs.writeSync(fd, bytes, done, Math.min(1 << 30, bytes.length - done));
  }
}

/** Groups tensors in order into shards of at most `maxBytes` (an oversized tensor stands alone). */
function planShards(tensors: TensorToWrite[], maxBytes: number | undefined): TensorToWrite[][] {
  if (maxBytes === undefined) return [tensors];
  if (!(maxBytes > 0)) throw new Error(`maxShardBytes must be positive, got ${maxBytes}`);
  const shards: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let currentBytes = 0;
  for (const tensor of tensors) {
    const bytes = tensorByteLength(tensor);
    if (current.length > 0 && currentBytes + bytes > maxBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(tensor);
    currentBytes += bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

function removeExistingWeights(dir: string): void {
  const shardPattern = /^model-\d{5}-of-\d{5}\.safetensors$/;
  for (const entry of fs.readdirSync(dir)) {
    if (entry === SINGLE_FILE_NAME || entry === INDEX_FILE_NAME || shardPattern.test(entry)) {
      fs.rmSync(path.join(dir, entry));
    }
  }
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function pad5(n: number): string {
  return String(n).padStart(5, '0');
}
