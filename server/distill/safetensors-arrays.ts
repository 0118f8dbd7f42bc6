// Typed arrays to and from a safetensors file, for the distillation shards: integer and
// float32 columns written as they are in memory (little-endian, as safetensors is), behind
// the format's JSON header. The checkpoint writer in models/checkpoint converts floats from
// float32 one tensor at a time; shards hold integers too and are already in memory, so this
// is a separate, smaller path. Files are written under a temporary name and renamed, so a
// reader never sees half a shard.
import * as fs from 'node:fs';
import { readExactly, readSafetensorsHeader } from '../../models/checkpoint/safetensors-header.ts';

export type ArrayDtype = 'I32' | 'I64' | 'F32';
export type TensorArray = Int32Array | BigInt64Array | Float32Array;

export interface ArrayTensor {
  name: string;
  shape: number[];
  data: TensorArray;
}

function dtypeOf(data: TensorArray): ArrayDtype {
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof BigInt64Array) return 'I64';
  return 'F32';
}

function header(tensors: readonly ArrayTensor[], metadata: Record<string, string>): Buffer {
  const entries: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length)
      throw new Error(`tensor ${t.name}: shape [${t.shape.join(', ')}] needs ${numel} values, has ${t.data.length}`);
    entries[t.name] = { dtype: dtypeOf(t.data), shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  // Padded with spaces to a multiple of 8, so every tensor's data is aligned for its type.
  const json = Buffer.from(JSON.stringify(entries), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, Math.min(1 << 30, bytes.length - done));
}

/** Writes the tensors (in order) and metadata to `file` atomically (temporary file, fsync, rename). */
export function writeArraysFile(file: string, tensors: readonly ArrayTensor[], metadata: Record<string, string>): number {
  const temporary = `${file}.partial`;
  const fd = fs.openSync(temporary, 'w');
  let bytes = 0;
  try {
    const head = header(tensors, metadata);
    writeAll(fd, head);
    bytes += head.length;
    for (const t of tensors) {
      writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      bytes += t.data.byteLength;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
  return bytes;
}

export interface ReadArrays {
  metadata: Record<string, string>;
  tensors: Map<string, { shape: number[]; data: TensorArray }>;
}

/** Reads a file written by writeArraysFile (any safetensors file of I32, I64 and F32 tensors). */
export function readArraysFile(file: string, names?: readonly string[]): ReadArrays {
  const fd = fs.openSync(file, 'r');
  try {
    const head = readSafetensorsHeader(file, fd);
    const tensors = new Map<string, { shape: number[]; data: TensorArray }>();
    for (const info of head.tensors.values()) {
      if (names !== undefined && !names.includes(info.name)) continue;
      const bytes = readExactly(fd, file, info.byteOffset, info.byteLength, info.name);
      const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      const data =
        info.dtype === 'I32'
          ? new Int32Array(buffer)
          : info.dtype === 'I64'
            ? new BigInt64Array(buffer)
            : info.dtype === 'F32'
              ? new Float32Array(buffer)
              : null;
      if (data === null) throw new Error(`${file}: tensor ${info.name} has dtype ${info.dtype}; expected I32, I64 or F32`);
      tensors.set(info.name, { shape: info.shape, data });
    }
    return { metadata: head.metadata, tensors };
  } finally {
    fs.closeSync(fd);
  }
}

/** Only the metadata of a safetensors file (its header), without reading the tensors. */
export function readArraysMetadata(file: string): Record<string, string> {
  const fd = fs.openSync(file, 'r');
  try {
    return readSafetensorsHeader(file, fd).metadata;
  } finally {
    fs.closeSync(fd);
  }
}
