// Shared helpers for the model tests: temporary directories and hand-made safetensors files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

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
