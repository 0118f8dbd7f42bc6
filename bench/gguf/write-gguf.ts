// Writes a Hugging Face checkpoint that moe-server serves as a GGUF llama.cpp loads: the same
// tensors, read through the same family definitions and checkpoint reader compile uses, F32
// (bit-identical values to moe-server's fp32 weights) or Q4_0 (moe-server's int4 codes, the
// scale rounded to f16). One tensor is held in memory at a time; the file is written beside
// its final name and renamed, so an interrupted write never looks finished.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, renameSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { checkpointWeights } from '../../models/checkpoint/weight-source.ts';
import { checkpointFingerprint } from '../../models/fingerprint.ts';
import { loadModelSpec } from '../../models/registry.ts';
import type { ProgressCallback } from '../../server/progress.ts';
import { layoutGguf } from './gguf-format.ts';
import { ggufTensors } from './gguf-tensors.ts';
import { llamaArchFor, modelMetadata } from './llama-arch.ts';
import { tokenizerMetadata } from './tokenizer-metadata.ts';

/** Bump when the bytes written for the same checkpoint change: cached files are keyed by it. */
export const GGUF_WRITER_VERSION = 1;

export type GgufWeights = 'f32' | 'q4_0';

export interface WriteGgufOptions {
  modelDir: string;
  outFile: string;
  weights: GgufWeights;
  onProgress?: ProgressCallback;
}

export interface WrittenGguf {
  file: string;
  bytes: number;
  numTensors: number;
  reused: boolean;
}

export function writeCheckpointGguf(opts: WriteGgufOptions): WrittenGguf {
  const { spec, family } = loadModelSpec(opts.modelDir);
  const arch = llamaArchFor(spec);
  const reader = CheckpointReader.open(opts.modelDir);
  const tmp = `${opts.outFile}.tmp-${process.pid}`;
  let fd: number | null = null;
  try {
    const names = family.weightNames(spec);
    const read = checkpointWeights(reader, spec, names, family.checkpointRenames);
    const tensors = ggufTensors(spec, names, read, arch, opts.weights);
    const name = `moe-server ${spec.modelType} ${opts.weights} from ${opts.modelDir}`;
    const metadata = [...modelMetadata(spec, arch, opts.weights, name), ...tokenizerMetadata(opts.modelDir, spec)];
    const layout = layoutGguf(metadata, tensors);
    mkdirSync(dirname(opts.outFile), { recursive: true });
    checkFreeSpace(dirname(opts.outFile), layout.fileBytes);
    fd = openSync(tmp, 'w');
    writeAll(fd, layout.header, 0);
    tensors.forEach((t, i) => {
      const bytes = t.encode();
      if (bytes.length !== layout.byteLengths[i]) throw new Error(`${t.name}: ${bytes.length} bytes, expected ${layout.byteLengths[i]}`);
      writeAll(fd!, bytes, layout.offsets[i]);
      opts.onProgress?.(i + 1, tensors.length);
    });
    // The last tensor's padding: the file ends on the alignment, as llama.cpp's writer leaves it.
    ftruncateSync(fd, layout.fileBytes);
    closeSync(fd);
    fd = null;
    renameSync(tmp, opts.outFile);
    return { file: opts.outFile, bytes: layout.fileBytes, numTensors: tensors.length, reused: false };
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    if (fd !== null) closeSync(fd);
    reader.close();
  }
}

/** The GGUF of `modelDir` in the cache, written on first use. */
export function ensureCheckpointGguf(cacheDir: string, modelDir: string, weights: GgufWeights, onProgress?: ProgressCallback): WrittenGguf {
  const key = createHash('sha256')
    .update(JSON.stringify({ writer: GGUF_WRITER_VERSION, weights, checkpoint: checkpointFingerprint(modelDir) }))
    .digest('hex')
    .slice(0, 24);
  const file = join(cacheDir, 'gguf', `${key}-${weights}.gguf`);
  if (existsSync(file)) return { file, bytes: 0, numTensors: 0, reused: true };
  return writeCheckpointGguf({ modelDir, outFile: file, weights, onProgress });
}

function checkFreeSpace(dir: string, bytes: number): void {
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  // Leave a margin: the machine is shared and the disk holds other people's work too.
  if (free < bytes + 2 * 1024 ** 3) {
    throw new Error(
      `writing ${(bytes / 1024 ** 3).toFixed(1)} GiB under ${dir} would leave under 2 GiB free (${(free / 1024 ** 3).toFixed(1)} GiB free)`,
    );
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}
