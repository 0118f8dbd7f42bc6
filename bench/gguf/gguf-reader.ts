// Reads a GGUF file's header, metadata and tensor infos, and one tensor's bytes: the check
// that what the writer wrote is what a reader finds (tests, and the benchmark's look at the
// file it is about to hand to llama.cpp). Independent of the writer's code paths on purpose.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  GGML_TYPE_ID,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VALUE_TYPE,
  alignTo,
  type GgmlType,
  type GgufValue,
} from './gguf-format.ts';

export interface GgufTensorEntry {
  name: string;
  dims: number[];
  type: GgmlType;
  /** Absolute offset of the data in the file. */
  offset: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorEntry[];
  alignment: number;
  dataStart: number;
  fileBytes: number;
}

/** Headers of real vocabularies (150k tokens) take a few MB; far below this. */
const MAX_HEADER_BYTES = 256 * 1024 * 1024;

export function readGguf(file: string): GgufFile {
  const fd = openSync(file, 'r');
  try {
    const fileBytes = fstatSync(fd).size;
    // Read a little first and more only when the header runs past it (big vocabularies).
    for (let size = 1 << 20; ; size *= 4) {
      const head = Buffer.alloc(Math.min(fileBytes, size, MAX_HEADER_BYTES));
      readAll(fd, head, 0);
      try {
        return parseHeader(head, file, fileBytes);
      } catch (err) {
        if (!(err instanceof HeaderPastEnd) || head.length >= Math.min(fileBytes, MAX_HEADER_BYTES)) throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}

function parseHeader(head: Buffer, file: string, fileBytes: number): GgufFile {
  const c = new Cursor(head);
  if (c.u32() !== GGUF_MAGIC) throw new Error(`${file}: not a GGUF file`);
  const version = c.u32();
  const numTensors = Number(c.u64());
  const numKv = Number(c.u64());
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < numKv; i++) {
    const key = c.string();
    metadata.set(key, readValue(c, c.u32()));
  }
  const alignmentValue = metadata.get('general.alignment');
  const alignment = alignmentValue?.type === 'u32' ? alignmentValue.value : GGUF_DEFAULT_ALIGNMENT;
  const infos: Array<Omit<GgufTensorEntry, 'offset'> & { relative: number }> = [];
  for (let i = 0; i < numTensors; i++) {
    const name = c.string();
    const dims = Array.from({ length: c.u32() }, () => Number(c.u64()));
    infos.push({ name, dims, type: ggmlTypeName(c.u32()), relative: Number(c.u64()) });
  }
  const dataStart = alignTo(c.position, alignment);
  const tensors = infos.map(({ relative, ...t }) => ({ ...t, offset: dataStart + relative }));
  return { version, metadata, tensors, alignment, dataStart, fileBytes };
}

class HeaderPastEnd extends Error {}

export function readTensorBytes(file: string, offset: number, byteLength: number): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const out = new Uint8Array(byteLength);
    readAll(fd, out, offset);
    return out;
  } finally {
    closeSync(fd);
  }
}

function readAll(fd: number, into: Uint8Array, position: number): void {
  for (let done = 0; done < into.length;) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error('unexpected end of file');
    done += n;
  }
}

function ggmlTypeName(id: number): GgmlType {
  const entry = Object.entries(GGML_TYPE_ID).find(([, v]) => v === id);
  if (entry === undefined) throw new Error(`ggml type ${id} is not one this reader knows`);
  return entry[0] as GgmlType;
}

const TYPE_NAMES = Object.fromEntries(Object.entries(GGUF_VALUE_TYPE).map(([k, v]) => [v, k])) as Record<number, string>;

function readValue(c: Cursor, typeId: number): GgufValue {
  const type = TYPE_NAMES[typeId];
  if (type === undefined) throw new Error(`unknown GGUF value type ${typeId}`);
  if (type === 'array') return readArray(c, c.u32(), Number(c.u64()));
  if (type === 'string') return { type, value: c.string() };
  if (type === 'bool') return { type, value: c.u8() !== 0 };
  if (type === 'u64' || type === 'i64') return { type, value: type === 'u64' ? c.u64() : c.i64() };
  return { type: type as 'u32', value: c.number(type) };
}

function readArray(c: Cursor, itemTypeId: number, length: number): GgufValue {
  const itemType = TYPE_NAMES[itemTypeId];
  if (itemType === 'string') return { type: 'array', itemType, value: Array.from({ length }, () => c.string()) };
  if (itemType === 'bool') return { type: 'array', itemType, value: Array.from({ length }, () => c.u8() !== 0) };
  if (itemType === 'u64' || itemType === 'i64')
    return { type: 'array', itemType, value: Array.from({ length }, () => (itemType === 'u64' ? c.u64() : c.i64())) };
  if (itemType === undefined || itemType === 'array') throw new Error(`unsupported GGUF array item type ${itemTypeId}`);
  return { type: 'array', itemType: itemType as 'u32', value: Array.from({ length }, () => c.number(itemType)) };
}

class Cursor {
  position = 0;
  constructor(private readonly buffer: Buffer) {}

  private take(n: number): number {
    if (this.position + n > this.buffer.length) throw new HeaderPastEnd('GGUF header runs past the bytes read');
    const at = this.position;
    this.position += n;
    return at;
  }
  u8(): number {
    return this.buffer.readUInt8(this.take(1));
  }
  u32(): number {
    return this.buffer.readUInt32LE(this.take(4));
  }
  u64(): bigint {
    return this.buffer.readBigUInt64LE(this.take(8));
  }
  i64(): bigint {
    return this.buffer.readBigInt64LE(this.take(8));
  }
  number(type: string): number {
    const b = this.buffer;
    if (type === 'u8') return b.readUInt8(this.take(1));
    if (type === 'i8') return b.readInt8(this.take(1));
    if (type === 'u16') return b.readUInt16LE(this.take(2));
    if (type === 'i16') return b.readInt16LE(this.take(2));
    if (type === 'u32') return b.readUInt32LE(this.take(4));
    if (type === 'i32') return b.readInt32LE(this.take(4));
    if (type === 'f32') return b.readFloatLE(this.take(4));
    if (type === 'f64') return b.readDoubleLE(this.take(8));
    throw new Error(`not a numeric GGUF type: ${type}`);
  }
  string(): string {
    const length = Number(this.u64());
    const at = this.take(length);
    return this.buffer.toString('utf8', at, at + length);
  }
}
