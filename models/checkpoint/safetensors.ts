// Reads Hugging Face safetensors checkpoints: one model.safetensors, or shards listed by
// model.safetensors.index.json. Opening parses headers only; each tensor's bytes are read on
// demand at its offset, so memory stays bounded by the largest tensor asked for at once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../errors.ts';
import { decodeToFloat32, isFloatDtype } from './dtype.ts';
import { isPlainObject, readExactly, readSafetensorsHeader, type SafetensorsHeader, type TensorInfo } from './safetensors-header.ts';

export type { TensorInfo } from './safetensors-header.ts';

/** Dtype names as safetensors spells them; only F32, F16 and BF16 can be read as float32. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | string;

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

export class CheckpointReader {
  private readonly fds = new Map<string, number>();
  private readonly headers = new Map<string, SafetensorsHeader>();
  private readonly tensors = new Map<string, TensorInfo>();
  /** model.safetensors or the index file: where a missing tensor was looked for. */
  private source = '';

  private constructor(readonly dir: string) {}

  /** Opens `dir`, preferring model.safetensors over a sharded index, as transformers does. */
  static open(dir: string): CheckpointReader {
    const reader = new CheckpointReader(dir);
    try {
      const single = path.join(dir, SINGLE_FILE_NAME);
      const index = path.join(dir, INDEX_FILE_NAME);
      if (fs.existsSync(single)) reader.addSingleFile(single);
      else if (fs.existsSync(index)) reader.addIndex(index);
      else throw new CheckpointError(dir, null, `has neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}`);
    } catch (error) {
      reader.close();
      throw error;
    }
    return reader;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) {
      throw new CheckpointError(this.source || this.dir, name, `is missing from the checkpoint (${this.tensors.size} tensors present)`);
    }
    return info;
  }

  /**
   * Reads one tensor as float32, widening F16/BF16. Throws CheckpointError naming the tensor
   * and its file for a shape mismatch, an unsupported dtype or data outside the file.
   */
  readFloat32(name: string, expectedShape?: readonly number[]): Float32Array {
    const info = this.info(name);
    if (expectedShape !== undefined && !sameShape(info.shape, expectedShape)) {
      throw new CheckpointError(info.file, name, `has shape [${info.shape.join(', ')}]; expected [${expectedShape.join(', ')}]`);
    }
    if (!isFloatDtype(info.dtype)) {
      throw new CheckpointError(info.file, name, `has dtype ${info.dtype}; only F32, F16 and BF16 are supported`);
    }
    const header = this.headers.get(info.file);
    const end = info.byteOffset + info.byteLength;
    if (header === undefined || end > header.fileSize) {
      throw new CheckpointError(
        info.file,
        name,
        `data ends at byte ${end} but the file has ${header?.fileSize ?? 0} bytes (truncated file?)`,
      );
    }
    const bytes = readExactly(this.fd(info.file), info.file, info.byteOffset, info.byteLength, name);
    return decodeToFloat32(
      info.dtype,
      bytes,
      info.shape.reduce((a, b) => a * b, 1),
    );
  }

  /** Metadata of the safetensors file holding `name` (e.g. {"format": "pt"}). */
  metadata(name: string): Record<string, string> {
    return this.headers.get(this.info(name).file)?.metadata ?? {};
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }

  private fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = openOrThrow(file);
      this.fds.set(file, fd);
    }
    return fd;
  }

  private loadHeader(file: string): SafetensorsHeader {
    let header = this.headers.get(file);
    if (header === undefined) {
      header = readSafetensorsHeader(file, this.fd(file));
      this.headers.set(file, header);
    }
    return header;
  }

  private addSingleFile(file: string): void {
    this.source = file;
    for (const [name, info] of this.loadHeader(file).tensors) this.tensors.set(name, info);
  }

  private addIndex(indexFile: string): void {
    this.source = indexFile;
    const weightMap = readWeightMap(indexFile);
    for (const [name, shardName] of Object.entries(weightMap)) {
      const shard = resolveShard(this.dir, indexFile, name, shardName);
      const info = this.loadHeader(shard).tensors.get(name);
      if (info === undefined) {
        throw new CheckpointError(shard, name, `is listed in ${INDEX_FILE_NAME} but missing from the shard`);
      }
      this.tensors.set(name, info);
    }
  }
}

function sameShape(actual: readonly number[], expected: readonly number[]): boolean {
  return actual.length === expected.length && actual.every((d, i) => d === expected[i]);
}

function openOrThrow(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (error) {
    throw new CheckpointError(file, null, `cannot be opened (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

function readWeightMap(indexFile: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(indexFile, 'utf-8'));
  } catch (error) {
    throw new CheckpointError(indexFile, null, `is not readable JSON (${(error as Error).message})`);
  }
  const weightMap = isPlainObject(parsed) ? parsed.weight_map : undefined;
  if (!isPlainObject(weightMap)) throw new CheckpointError(indexFile, null, 'has no "weight_map" object');
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string') throw new CheckpointError(indexFile, name, 'maps to a shard that is not a file name');
  }
  return weightMap as Record<string, string>;
}

/** Shard paths stay inside the checkpoint directory, whatever the index says. */
function resolveShard(dir: string, indexFile: string, tensor: string, shardName: string): string {
  const root = path.resolve(dir);
  if (path.dirname(path.resolve(root, shardName)) !== root) {
    throw new CheckpointError(indexFile, tensor, `maps to shard "${shardName}" outside the checkpoint directory`);
  }
  return path.join(dir, shardName);
}
