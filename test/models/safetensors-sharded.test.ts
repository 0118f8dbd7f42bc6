import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { writeSafetensorsCheckpoint, type TensorToWrite } from '../../models/checkpoint/safetensors-writer.ts';
import { CheckpointError } from '../../models/errors.ts';
import { removeTempDirs, tempDir, thrownBy } from './helpers.ts';

afterAll(removeTempDirs);

// Ten 1 KiB tensors in F32 (256 values each) with values that identify the tensor.
const TENSORS: TensorToWrite[] = Array.from({ length: 10 }, (_, i) => ({ name: `layer.${i}.weight`, dtype: 'F32', shape: [16, 16] }));
const valuesOf = (index: number): Float32Array => new Float32Array(256).map((_, j) => index * 1000 + j);

function writeSharded(maxShardBytes?: number): { dir: string; files: string[]; progress: number[] } {
  const dir = tempDir();
  const progress: number[] = [];
  const files = writeSafetensorsCheckpoint(dir, TENSORS, (_, i) => valuesOf(i), {
    maxShardBytes,
    onTensorWritten: (done, total) => {
      expect(total).toBe(TENSORS.length);
      progress.push(done);
    },
  });
  return { dir, files, progress };
}

describe('sharded checkpoints', () => {
  it('writes shards of at most maxShardBytes plus an index with total_size and weight_map', () => {
    const { dir, files, progress } = writeSharded(3 * 1024);
    const names = files.map((f) => path.basename(f));
    expect(names).toEqual([
      'model-00001-of-00004.safetensors',
      'model-00002-of-00004.safetensors',
      'model-00003-of-00004.safetensors',
      'model-00004-of-00004.safetensors',
      'model.safetensors.index.json',
    ]);
    expect(progress).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf-8'));
    expect(index.metadata.total_size).toBe(10 * 1024);
    expect(index.weight_map['layer.0.weight']).toBe('model-00001-of-00004.safetensors');
    expect(index.weight_map['layer.9.weight']).toBe('model-00004-of-00004.safetensors');
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
  });

  it('reads every tensor back through the index, from the right shard', () => {
    const { dir } = writeSharded(3 * 1024);
    const reader = CheckpointReader.open(dir);
    try {
      expect(reader.names().sort()).toEqual(TENSORS.map((t) => t.name).sort());
      TENSORS.forEach((t, i) => expect([...reader.readFloat32(t.name, [16, 16])]).toEqual([...valuesOf(i)]));
      expect(path.basename(reader.info('layer.4.weight').file)).toBe('model-00002-of-00004.safetensors');
    } finally {
      reader.close();
    }
  });

  it('writes a single file when everything fits, and replaces an earlier sharded layout', () => {
    const { dir } = writeSharded(3 * 1024);
    writeSafetensorsCheckpoint(dir, TENSORS, (_, i) => valuesOf(i), { maxShardBytes: 1 << 20 });
    expect(fs.readdirSync(dir).sort()).toEqual(['model.safetensors']);
    const reader = CheckpointReader.open(dir);
    expect([...reader.readFloat32('layer.7.weight')]).toEqual([...valuesOf(7)]);
    reader.close();
  });

  it('names the shard and tensor when the index points at a tensor the shard lacks', () => {
    const { dir } = writeSharded(3 * 1024);
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(fs.readFileSync(indexFile, 'utf-8'));
    index.weight_map['layer.0.weight'] = 'model-00002-of-00004.safetensors';
    fs.writeFileSync(indexFile, JSON.stringify(index));
    const error = thrownBy(() => CheckpointReader.open(dir));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain('layer.0.weight');
    expect(error.message).toContain('model-00002-of-00004.safetensors');
  });

  it.each([
    ['a missing shard file', { 'a.weight': 'model-00009-of-00009.safetensors' }, /cannot be opened/],
    ['a shard outside the directory', { 'a.weight': '../elsewhere.safetensors' }, /outside the checkpoint directory/],
    ['a non-string shard', { 'a.weight': 3 }, /not a file name/],
  ])('rejects %s', (_, weightMap, pattern) => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const error = thrownBy(() => CheckpointReader.open(dir));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toMatch(pattern);
  });

  it('rejects an index that is not JSON or has no weight_map', () => {
    const dir = tempDir();
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    fs.writeFileSync(indexFile, '{oops');
    expect(thrownBy(() => CheckpointReader.open(dir)).message).toContain(indexFile);
    fs.writeFileSync(indexFile, '{"metadata": {}}');
    expect(thrownBy(() => CheckpointReader.open(dir)).message).toMatch(/weight_map/);
  });
});
