// The GGUF container (version 3), as llama.cpp reads it: a header (magic, version, tensor and
// metadata counts), metadata key/value pairs, tensor infos (name, ggml dims with ne0 the
// contiguous one, type, offset relative to the data section), padding to the alignment, then
// each tensor's bytes at its offset, every offset a multiple of the alignment. All little-endian.
//
// Written here rather than taken from npm: the GGUF packages there read files (node-llama-cpp
// has a reader) or are unmaintained writers without Q4_0, and the benchmark needs the exact
// bytes (the same 4-bit blocks as moe-server's MatMulNBits weights) under test.

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** gguf_type: the type tag of a metadata value. */
export const GGUF_VALUE_TYPE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPE, 'array'>;

export type GgufValue =
  | { type: Exclude<GgufScalarType, 'bool' | 'string' | 'u64' | 'i64'>; value: number }
  | { type: 'u64' | 'i64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string'; value: string[] }
  | { type: 'array'; itemType: Exclude<GgufScalarType, 'bool' | 'string' | 'u64' | 'i64'>; value: ArrayLike<number> }
  | { type: 'array'; itemType: 'bool'; value: boolean[] }
  | { type: 'array'; itemType: 'u64' | 'i64'; value: bigint[] };

export type GgufMetadata = Array<[key: string, value: GgufValue]>;

/** The ggml tensor types this writer produces, with their ids in ggml.h. */
export const GGML_TYPE_ID = { f32: 0, f16: 1, q4_0: 2 } as const;
export type GgmlType = keyof typeof GGML_TYPE_ID;

/** Elements per block and bytes per block of each type. */
const BLOCK: Readonly<Record<GgmlType, { elements: number; bytes: number }>> = {
  f32: { elements: 1, bytes: 4 },
  f16: { elements: 1, bytes: 2 },
  q4_0: { elements: 32, bytes: 18 }, // f16 scale + 16 bytes of nibbles
};

export function ggmlTensorBytes(type: GgmlType, dims: readonly number[]): number {
  const { elements, bytes } = BLOCK[type];
  if (dims[0] % elements !== 0) throw new RangeError(`${type} needs ne0 (${dims[0]}) to be a multiple of ${elements}`);
  return (dims.reduce((a, b) => a * b, 1) / elements) * bytes;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne0 (contiguous) first, i.e. a Hugging Face shape reversed. */
  dims: number[];
  type: GgmlType;
}

export interface GgufLayout {
  /** Everything before the data section, padding included. */
  header: Uint8Array;
  /** Absolute file offset of each tensor's data, in the order given. */
  offsets: number[];
  byteLengths: number[];
  fileBytes: number;
}

export const alignTo = (n: number, alignment: number): number => Math.ceil(n / alignment) * alignment;

/** Serialises the header, metadata and tensor infos, and places every tensor. */
export function layoutGguf(metadata: GgufMetadata, tensors: readonly GgufTensorInfo[], alignment = GGUF_DEFAULT_ALIGNMENT): GgufLayout {
  const out = new ByteSink();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(BigInt(tensors.length));
  out.u64(BigInt(metadata.length));
  for (const [key, value] of metadata) {
    out.string(key);
    out.u32(GGUF_VALUE_TYPE[value.type]);
    writeValue(out, value);
  }
  const byteLengths = tensors.map((t) => ggmlTensorBytes(t.type, t.dims));
  const relative: number[] = [];
  let offset = 0;
  tensors.forEach((t, i) => {
    relative.push(offset);
    out.string(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(BigInt(d));
    out.u32(GGML_TYPE_ID[t.type]);
    out.u64(BigInt(offset));
    offset = alignTo(offset + byteLengths[i], alignment);
  });
  const dataStart = alignTo(out.length, alignment);
  out.zeros(dataStart - out.length);
  return { header: out.bytes(), offsets: relative.map((r) => dataStart + r), byteLengths, fileBytes: dataStart + offset };
}

function writeValue(out: ByteSink, v: GgufValue): void {
  if (v.type !== 'array') return writeScalar(out, v.type, v.value);
  out.u32(GGUF_VALUE_TYPE[v.itemType]);
  out.u64(BigInt(v.value.length));
  for (let i = 0; i < v.value.length; i++) writeScalar(out, v.itemType, v.value[i]);
}

function writeScalar(out: ByteSink, type: GgufScalarType, value: number | bigint | boolean | string): void {
  switch (type) {
    case 'string':
      return out.string(String(value));
    case 'bool':
      return out.u8(value ? 1 : 0);
    case 'u64':
    case 'i64':
      if (typeof value !== 'bigint') throw new TypeError(`${type} values are bigints`);
      return type === 'u64' ? out.u64(value) : out.i64(value);
    default:
      if (typeof value !== 'number') throw new TypeError(`${type} values are numbers`);
      return out.number(type, value);
  }
}

const NUMBER_BYTES = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, f64: 8 } as const;

/** A growable little-endian byte buffer. */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const bigger = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + n));
      this.buffer.copy(bigger, 0, 0, this.length);
      this.buffer = bigger;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  u8(v: number): void {
    const at = this.reserve(1);
    this.buffer.writeUInt8(v, at);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.buffer.writeUInt32LE(v, at);
  }
  u64(v: bigint): void {
    const at = this.reserve(8);
    this.buffer.writeBigUInt64LE(v, at);
  }
  i64(v: bigint): void {
    const at = this.reserve(8);
    this.buffer.writeBigInt64LE(v, at);
  }
  number(type: Exclude<GgufScalarType, 'bool' | 'string' | 'u64' | 'i64'>, v: number): void {
    // reserve() may move the buffer: take the offset first, then write into this.buffer.
    const at = this.reserve(NUMBER_BYTES[type]);
    const b = this.buffer;
    if (type === 'u8') b.writeUInt8(v, at);
    else if (type === 'i8') b.writeInt8(v, at);
    else if (type === 'u16') b.writeUInt16LE(v, at);
    else if (type === 'i16') b.writeInt16LE(v, at);
    else if (type === 'u32') b.writeUInt32LE(v, at);
    else if (type === 'i32') b.writeInt32LE(v, at);
    else if (type === 'f32') b.writeFloatLE(v, at);
    else b.writeDoubleLE(v, at);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(BigInt(bytes.length));
    const at = this.reserve(bytes.length);
    bytes.copy(this.buffer, at);
  }
  zeros(n: number): void {
    const at = this.reserve(n);
    this.buffer.fill(0, at, this.length);
  }
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}
