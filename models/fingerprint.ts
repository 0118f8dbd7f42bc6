// A content key for a checkpoint directory: the same weights and config give the same key
// wherever they live, and any edit gives a new one. Small checkpoints are hashed whole; for
// large ones, hashing every byte on each start would cost minutes, so each safetensors file
// contributes its size, its header (every tensor's name, dtype, shape and offsets) and
// evenly spaced samples of its data.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

const FULL_HASH_LIMIT_BYTES = 512 * 1024 * 1024;
const SAMPLE_COUNT = 64;
const SAMPLE_BYTES = 64 * 1024;

export function checkpointFingerprint(dir: string): string {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors') || f === 'config.json' || f.endsWith('.safetensors.index.json'))
    .sort();
  const totalBytes = files.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  const whole = totalBytes <= FULL_HASH_LIMIT_BYTES;
  const hash = createHash('sha256');
  for (const file of files) {
    hash.update(`\0${file}\0`);
    hashFile(hash, join(dir, file), whole || !file.endsWith('.safetensors'));
  }
  return hash.digest('hex');
}

function hashFile(hash: ReturnType<typeof createHash>, path: string, whole: boolean): void {
  const size = statSync(path).size;
  hash.update(String(size));
  const fd = openSync(path, 'r');
  try {
    if (whole) {
      readRange(fd, 0, size, (chunk) => hash.update(chunk));
      return;
    }
    const lengthBytes = Buffer.alloc(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const headerEnd = Math.min(size, 8 + Number(lengthBytes.readBigUInt64LE(0)));
    readRange(fd, 0, headerEnd, (chunk) => hash.update(chunk));
    const dataBytes = size - headerEnd;
    for (let i = 0; i < SAMPLE_COUNT; i++) {
      const start = headerEnd + Math.floor((dataBytes * i) / SAMPLE_COUNT);
      readRange(fd, start, Math.min(size, start + SAMPLE_BYTES), (chunk) => hash.update(chunk));
    }
  } finally {
    closeSync(fd);
  }
}

function readRange(fd: number, start: number, end: number, consume: (chunk: Buffer) => void): void {
  const buffer = Buffer.alloc(Math.min(8 * 1024 * 1024, Math.max(1, end - start)));
  for (let pos = start; pos < end;) {
    const n = readSync(fd, buffer, 0, Math.min(buffer.length, end - pos), pos);
    if (n <= 0) break;
    consume(buffer.subarray(0, n));
    pos += n;
  }
}
