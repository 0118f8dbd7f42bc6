// Appends initializer bytes to one external-data file next to a model file. Offsets are
// page aligned so ONNX Runtime can map each tensor straight from the page cache.
import { closeSync, openSync, writeSync } from 'node:fs';
import { basename } from 'node:path';

const ALIGNMENT = 4096;
const PADDING = new Uint8Array(ALIGNMENT);

export class WeightsFileWriter {
  readonly fileName: string;
  private readonly fd: number;
  private size = 0;

  constructor(readonly path: string) {
    this.fileName = basename(path);
    this.fd = openSync(path, 'w');
  }

  append(bytes: Uint8Array): { offset: number; length: number } {
    const pad = (ALIGNMENT - (this.size % ALIGNMENT)) % ALIGNMENT;
    if (pad > 0) this.write(PADDING.subarray(0, pad));
    const offset = this.size;
    this.write(bytes);
    return { offset, length: bytes.byteLength };
  }

  close(): void {
    closeSync(this.fd);
  }

  private write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done, this.size + done);
    this.size += bytes.byteLength;
  }
}
