import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGUF_MAGIC, type GgufMetadata, layoutGguf } from '../../bench/gguf/gguf-format.ts';
import { readGguf, readTensorBytes } from '../../bench/gguf/gguf-reader.ts';

const dir = mkdtempSync(join(tmpdir(), 'gguf-format-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Lays out and writes a file the way write-gguf.ts does: header, then each tensor at its offset. */
function writeFile(file: string, metadata: GgufMetadata, tensors: Array<{ name: string; dims: number[]; data: Float32Array }>) {
  const layout = layoutGguf(
    metadata,
    tensors.map((t) => ({ name: t.name, dims: t.dims, type: 'f32' as const })),
  );
  const bytes = new Uint8Array(layout.fileBytes);
  bytes.set(layout.header, 0);
  tensors.forEach((t, i) => bytes.set(new Uint8Array(t.data.buffer), layout.offsets[i]));
  writeFileSync(file, bytes);
  return layout;
}

describe('GGUF container', () => {
  const metadata: GgufMetadata = [
    ['general.architecture', { type: 'string', value: 'deepseek' }],
    ['general.alignment', { type: 'u32', value: 32 }],
    ['a.u8', { type: 'u8', value: 200 }],
    ['a.i32', { type: 'i32', value: -7 }],
    ['a.f32', { type: 'f32', value: 1e-6 }],
    ['a.f64', { type: 'f64', value: Math.PI }],
    ['a.bool', { type: 'bool', value: true }],
    ['a.u64', { type: 'u64', value: 2n ** 40n }],
    ['a.unicode', { type: 'string', value: '▁hello ✓' }],
    ['a.strings', { type: 'array', itemType: 'string', value: ['<unk>', '<s>', '', '▁the'] }],
    ['a.f32s', { type: 'array', itemType: 'f32', value: Float32Array.of(0, -1.5, 3.25) }],
    ['a.i32s', { type: 'array', itemType: 'i32', value: Int32Array.of(1, 2, -3) }],
  ];
  // Odd sizes so every tensor needs padding to the next 32-byte boundary.
  const tensors = [
    { name: 'first', dims: [3], data: Float32Array.of(1, 2, 3) },
    { name: 'second.weight', dims: [5, 2], data: Float32Array.from({ length: 10 }, (_, i) => i / 7) },
    { name: 'third', dims: [1, 1, 9], data: Float32Array.from({ length: 9 }, (_, i) => -i) },
  ];
  const file = join(dir, 'container.gguf');
  const layout = writeFile(file, metadata, tensors);

  it('starts with the magic and version 3, and ends on the alignment', () => {
    const read = readGguf(file);
    expect(Buffer.from(layout.header.subarray(0, 4)).readUInt32LE(0)).toBe(GGUF_MAGIC);
    expect(read.version).toBe(3);
    expect(read.fileBytes).toBe(statSync(file).size);
    expect(read.fileBytes % 32).toBe(0);
  });

  it('reads back every metadata value with its type', () => {
    const read = readGguf(file);
    expect([...read.metadata.keys()]).toEqual(metadata.map(([k]) => k));
    for (const [key, value] of metadata) {
      const got = read.metadata.get(key)!;
      expect(got.type).toBe(value.type);
      if (value.type === 'array' && got.type === 'array') {
        expect(got.itemType).toBe(value.itemType);
        expect(Array.from(got.value as ArrayLike<unknown>)).toEqual(Array.from(value.value as ArrayLike<unknown>));
      } else if (key === 'a.f32') expect(got.value).toBeCloseTo(1e-6, 12);
      else expect(got.value).toEqual(value.value);
    }
  });

  it('places every tensor at an aligned offset and reads its bytes back', () => {
    const read = readGguf(file);
    expect(read.dataStart % 32).toBe(0);
    expect(read.dataStart).toBe(layout.header.length);
    expect(read.tensors.map((t) => [t.name, t.dims, t.type])).toEqual(tensors.map((t) => [t.name, t.dims, 'f32']));
    read.tensors.forEach((t, i) => {
      expect(t.offset % 32).toBe(0);
      expect(t.offset).toBe(layout.offsets[i]);
      const bytes = readTensorBytes(file, t.offset, tensors[i].data.byteLength);
      expect(new Float32Array(bytes.buffer)).toEqual(tensors[i].data);
    });
    // Tensors do not overlap: each starts at or after the previous one's end.
    for (let i = 1; i < read.tensors.length; i++)
      expect(read.tensors[i].offset).toBeGreaterThanOrEqual(layout.offsets[i - 1] + layout.byteLengths[i - 1]);
  });

  it('refuses a Q4_0 tensor whose rows are not whole blocks', () => {
    expect(() => layoutGguf([], [{ name: 'w', dims: [48, 2], type: 'q4_0' }])).toThrow(/multiple of 32/);
    expect(layoutGguf([], [{ name: 'w', dims: [64, 3], type: 'q4_0' }]).byteLengths).toEqual([2 * 3 * 18]);
  });
});
