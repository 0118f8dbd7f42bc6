// Parses and validates one safetensors file's header: an 8-byte little-endian length, then
// that many bytes of JSON mapping tensor names to {dtype, shape, data_offsets}. Only the
// header is read; a malformed file becomes a CheckpointError naming it, never a crash.
import * as fs from 'node:fs';
import { CheckpointError } from '../errors.ts';
import { dtypeByteSize } from './dtype.ts';

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** The safetensors file holding the tensor. */
  file: string;
  /** Absolute position of the tensor's first byte in `file` (header included). */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  /** Position of the data section: 8 + header length. */
  dataStart: number;
  fileSize: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

// The format caps headers at 100 MB; anything larger is a corrupt length field.
const MAX_HEADER_BYTES = 100_000_000;

/** Reads and validates the header of the safetensors file open as `fd`. */
export function readSafetensorsHeader(file: string, fd: number): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) throw new CheckpointError(file, null, `is too short to be safetensors (${fileSize} bytes)`);
  const lengthBytes = readExactly(fd, file, 0, 8);
  const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
  if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || headerLength > fileSize - 8) {
    throw new CheckpointError(file, null, `has an invalid header length ${headerLength} (file is ${fileSize} bytes)`);
  }
  const parsed = parseHeaderJson(file, readExactly(fd, file, 8, headerLength));
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') metadata = parseMetadata(file, entry);
    else tensors.set(name, parseTensorEntry(file, name, entry, dataStart));
  }
  checkNoOverlap(file, [...tensors.values()]);
  return { file, dataStart, fileSize, tensors, metadata };
}

/** Reads exactly `length` bytes at `position` into a fresh (aligned) buffer. */
export function readExactly(fd: number, file: string, position: number, length: number, tensor: string | null = null): Uint8Array {
  const out = new Uint8Array(length);
  // readSync moves at most ~2 GiB per call; large tensors take several.
  const maxChunk = 1 << 30;
  let done = 0;
  while (done < length) {
    const read = fs.readSync(fd, out, done, Math.min(maxChunk, length - done), position + done);
    if (read === 0) {
      throw new CheckpointError(file, tensor, `data ends at byte ${position + done}; expected ${position + length} (truncated file?)`);
    }
    done += read;
  }
  return out;
}

function parseHeaderJson(file: string, bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new CheckpointError(file, null, `has a header that is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(value)) throw new CheckpointError(file, null, 'has a header that is not a JSON object');
  return value;
}

function parseMetadata(file: string, entry: unknown): Record<string, string> {
  if (!isPlainObject(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
    throw new CheckpointError(file, null, 'has a "__metadata__" entry that is not a map of strings');
  }
  return entry as Record<string, string>;
}

function parseTensorEntry(file: string, name: string, entry: unknown, dataStart: number): TensorInfo {
  if (!isPlainObject(entry)) throw new CheckpointError(file, name, 'has a header entry that is not an object');
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') throw new CheckpointError(file, name, 'has no string "dtype" in the header');
  if (!isIntArray(shape)) throw new CheckpointError(file, name, 'has a "shape" that is not an array of non-negative integers');
  if (!isIntArray(offsets) || offsets.length !== 2 || offsets[0] > offsets[1]) {
    throw new CheckpointError(file, name, 'has "data_offsets" that are not [begin, end] with begin <= end');
  }
  const byteLength = offsets[1] - offsets[0];
  const elementBytes = dtypeByteSize(dtype);
  if (elementBytes !== null) {
    const expected = shape.reduce((a, b) => a * b, 1) * elementBytes;
    if (expected !== byteLength) {
      throw new CheckpointError(file, name, `spans ${byteLength} bytes but ${dtype} [${shape.join(', ')}] needs ${expected}`);
    }
  }
  // Bounds against the file size are checked when the data is read, naming the tensor then.
  return { name, dtype, shape, file, byteOffset: dataStart + offsets[0], byteLength };
}

function checkNoOverlap(file: string, tensors: TensorInfo[]): void {
  const sorted = [...tensors].sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1];
    if (sorted[i].byteOffset < previous.byteOffset + previous.byteLength) {
      throw new CheckpointError(file, sorted[i].name, `overlaps the data of tensor "${previous.name}"`);
    }
  }
}

function isIntArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => Number.isSafeInteger(v) && (v as number) >= 0);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
