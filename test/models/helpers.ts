// Shared helpers for the model tests: temporary directories and hand-made safetensors files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../../models/checkpoint/safetensors-writer.ts';

const created: string[] = [];

export function tempDir(prefix = 'moe-models-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Removes every directory tempDir made in this test file (call from afterAll). */
export function removeTempDirs(): void {
  for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** A safetensors file from an arbitrary header object and data bytes (for malformed cases). */
export function writeRawSafetensors(file: string, header: unknown, data: Uint8Array = new Uint8Array(0)): void {
  const json = new TextEncoder().encode(JSON.stringify(header));
  writeRawBytes(file, json, data);
}

/** A safetensors file whose header bytes are given verbatim. */
export function writeRawBytes(file: string, headerBytes: Uint8Array, data: Uint8Array, declaredLength?: number): void {
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(declaredLength ?? headerBytes.length), true);
  fs.writeFileSync(file, Buffer.concat([prefix, headerBytes, data]));
}

/** Runs `fn`, expecting it to throw; returns the error for further checks. */
export function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}
/** Rewrites model.safetensors through `edit`, keeping every other tensor as it was. */
export function rewriteTensors(dir: string, edit: (tensors: TensorToWrite[]) => TensorToWrite[]): void {
  const reader = CheckpointReader.open(dir);
  const original = reader.names().map((name) => ({ name, data: reader.readFloat32(name), shape: reader.info(name).shape }));
  reader.close();
  const tensors = edit(original.map(({ name, shape }) => ({ name, dtype: 'F32' as const, shape })));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, (t) => {
    const source = original.find((o) => o.name === t.name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    return source && source.data.length === count ? source.data : new Float32Array(count);
  });
}

/** Rewrites model.safetensors with `from` replaced by `to` in every tensor name, values kept. */
export function renameTensors(dir: string, from: string, to: string): void {
  const reader = CheckpointReader.open(dir);
  const original = reader.names().map((name) => ({ name, data: reader.readFloat32(name), shape: reader.info(name).shape }));
  reader.close();
  const renamed = new Map(original.map((t) => [t.name.replace(from, to), t]));
  const tensors = [...renamed].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape }));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, (t) => renamed.get(t.name)?.data ?? new Float32Array(0));
}
