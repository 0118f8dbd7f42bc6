import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits } from '../../models/checkpoint/dtype.ts';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../../models/checkpoint/safetensors-writer.ts';
import { CheckpointError } from '../../models/errors.ts';
import { removeTempDirs, tempDir, thrownBy, writeRawBytes, writeRawSafetensors } from './helpers.ts';

const readers: CheckpointReader[] = [];
function open(dir: string): CheckpointReader {
  const reader = CheckpointReader.open(dir);
  readers.push(reader);
  return reader;
}
afterEach(() => {
  for (const reader of readers.splice(0)) reader.close();
});
afterAll(removeTempDirs);

const EDGE_VALUES = [0, -0, 1, -2.5, 65504, 2 ** -24, 3e-8, 1e-3, Infinity, -Infinity, Number.NaN, 123.456];

function edgeTensor(count: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = i < EDGE_VALUES.length ? EDGE_VALUES[i] : Math.sin(i) * 10;
  return out;
}

describe('safetensors write + read', () => {
  const tensors: TensorToWrite[] = [
    { name: 'a.f32', dtype: 'F32', shape: [3, 5] },
    { name: 'b.f16', dtype: 'F16', shape: [15] },
    { name: 'c.bf16', dtype: 'BF16', shape: [5, 1, 3] },
    { name: 'd.scalar', dtype: 'F32', shape: [] },
    { name: 'e.empty', dtype: 'F16', shape: [0, 4] },
  ];

  function writeSample(): string {
    const dir = tempDir();
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors, (t) => edgeTensor(t.shape.reduce((a, b) => a * b, 1)), {
      format: 'pt',
    });
    return dir;
  }

  it('round-trips F32 exactly and F16/BF16 to their rounded values', () => {
    const reader = open(writeSample());
    const values = edgeTensor(15);
    expect([...reader.readFloat32('a.f32', [3, 5])]).toEqual([...values]);
    const f16 = reader.readFloat32('b.f16', [15]);
    expect([...f16]).toEqual([...values].map((v) => f16BitsToF32(f32ToF16Bits(v))));
    expect(f16[5]).toBe(2 ** -24);
    expect(Object.is(f16[1], -0)).toBe(true);
    expect(f16[8]).toBe(Infinity);
    const bf16 = reader.readFloat32('c.bf16');
    expect(bf16[0]).toBe(0);
    expect(bf16[3]).toBe(-2.5);
    expect(bf16[9]).toBe(-Infinity);
    expect(Number.isNaN(bf16[10])).toBe(true);
    expect(bf16[11]).toBe(123.5); // 123.456 rounded to 8 significant bits
    expect([...reader.readFloat32('d.scalar', [])]).toEqual([0]);
    expect(reader.readFloat32('e.empty', [0, 4]).length).toBe(0);
  });

  it('lists tensors with dtype, shape, file and aligned offsets', () => {
    const dir = writeSample();
    const reader = open(dir);
    expect(reader.names()).toEqual(tensors.map((t) => t.name));
    expect(reader.has('a.f32')).toBe(true);
    expect(reader.has('zzz')).toBe(false);
    const info = reader.info('b.f16');
    expect(info).toMatchObject({ name: 'b.f16', dtype: 'F16', shape: [15], byteLength: 30 });
    expect(info.file).toBe(path.join(dir, 'model.safetensors'));
    expect(reader.info('a.f32').byteOffset % 8).toBe(0); // header padded to 8 bytes
    expect(reader.metadata('a.f32')).toEqual({ format: 'pt' });
  });

  it('rejects a producer returning the wrong number of values', () => {
    const dir = tempDir();
    const error = thrownBy(() =>
      writeSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'x', dtype: 'F32', shape: [4] }], () => new Float32Array(3)),
    );
    expect(error.message).toContain('"x"');
  });
});

describe('CheckpointReader errors name the tensor and the file', () => {
  function singleTensorDir(): { dir: string; file: string } {
    const dir = tempDir();
    const file = path.join(dir, 'model.safetensors');
    writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [4, 8] }], () => new Float32Array(32).fill(1));
    return { dir, file };
  }

  it('missing tensor', () => {
    const { dir, file } = singleTensorDir();
    const error = thrownBy(() => open(dir).readFloat32('model.nope.weight'));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain('model.nope.weight');
    expect(error.message).toContain(file);
    expect((error as CheckpointError).tensor).toBe('model.nope.weight');
  });

  it('shape mismatch says expected and actual', () => {
    const { dir, file } = singleTensorDir();
    const error = thrownBy(() => open(dir).readFloat32('w', [8, 4]));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain('"w"');
    expect(error.message).toContain(file);
    expect(error.message).toContain('[4, 8]');
    expect(error.message).toContain('expected [8, 4]');
  });

  it.each(['I64', 'F8_E4M3', 'F64'])('unsupported dtype %s', (dtype) => {
    const dir = tempDir();
    const file = path.join(dir, 'model.safetensors');
    const bytes = dtype === 'F8_E4M3' ? 4 : 32;
    writeRawSafetensors(file, { ids: { dtype, shape: [4], data_offsets: [0, bytes] } }, new Uint8Array(bytes));
    const reader = open(dir);
    expect(reader.info('ids').dtype).toBe(dtype);
    const error = thrownBy(() => reader.readFloat32('ids'));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain('"ids"');
    expect(error.message).toContain(file);
    expect(error.message).toContain(dtype);
  });

  it('truncated file', () => {
    const { dir, file } = singleTensorDir();
    fs.truncateSync(file, fs.statSync(file).size - 10);
    const error = thrownBy(() => open(dir).readFloat32('w'));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain('"w"');
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/truncated/);
  });

  it('no checkpoint in the directory', () => {
    const dir = tempDir();
    const error = thrownBy(() => open(dir));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain(dir);
  });
});

describe('malformed headers become CheckpointError naming the file', () => {
  const cases: Array<[string, (file: string) => void, RegExp]> = [
    ['shorter than the length prefix', (f) => fs.writeFileSync(f, Buffer.from([1, 2, 3])), /too short/],
    [
      'header length beyond the file',
      (f) => writeRawBytes(f, new TextEncoder().encode('{}'), new Uint8Array(0), 1000),
      /invalid header length/,
    ],
    ['absurd header length', (f) => writeRawBytes(f, new TextEncoder().encode('{}'), new Uint8Array(0), 2 ** 40), /invalid header length/],
    ['not JSON', (f) => writeRawBytes(f, new TextEncoder().encode('{"a": [1, 2'), new Uint8Array(0)), /not valid UTF-8 JSON/],
    ['invalid UTF-8', (f) => writeRawBytes(f, new Uint8Array([0x7b, 0xff, 0x7d]), new Uint8Array(0)), /not valid UTF-8 JSON/],
    ['a JSON array', (f) => writeRawSafetensors(f, [1, 2]), /not a JSON object/],
    ['an entry without dtype', (f) => writeRawSafetensors(f, { t: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /"t".*dtype/],
    [
      'a negative dimension',
      (f) => writeRawSafetensors(f, { t: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /"t".*shape/,
    ],
    [
      'offsets inconsistent with dtype and shape',
      (f) => writeRawSafetensors(f, { t: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, new Uint8Array(20)),
      /"t" spans 20 bytes .* needs 24/,
    ],
    [
      'reversed offsets',
      (f) => writeRawSafetensors(f, { t: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, new Uint8Array(4)),
      /"t".*data_offsets/,
    ],
    [
      'overlapping tensors',
      (f) =>
        writeRawSafetensors(
          f,
          { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
          new Uint8Array(12),
        ),
      /"b" overlaps .*"a"/,
    ],
    ['bad __metadata__', (f) => writeRawSafetensors(f, { __metadata__: { format: 1 } }), /__metadata__/],
  ];

  it.each(cases)('%s', (_, write, pattern) => {
    const dir = tempDir();
    const file = path.join(dir, 'model.safetensors');
    write(file);
    const error = thrownBy(() => open(dir));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain(file);
    expect(error.message).toMatch(pattern);
  });

  it('skips __metadata__ and reads the tensors after it', () => {
    const dir = tempDir();
    const data = new Uint8Array(new Float32Array([1.5, -2]).buffer);
    writeRawSafetensors(
      path.join(dir, 'model.safetensors'),
      { __metadata__: { format: 'pt' }, t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } },
      data,
    );
    const reader = open(dir);
    expect(reader.names()).toEqual(['t']);
    expect([...reader.readFloat32('t')]).toEqual([1.5, -2]);
  });
});
