// JSON Lines files for offline jobs (batch, distill): read line by line with memory bounded
// by the longest line however large the file, and appended to one whole line per write, so a
// crash leaves at most a torn last line, which the next run cuts off before resuming.
import * as fs from 'node:fs';

export interface FileLine {
  /** 1-based. */
  number: number;
  text: string;
  /** Byte offset just past the line (and its newline, when it has one). */
  end: number;
  /** False for a last line without a newline: in an output file, a write a crash cut short. */
  complete: boolean;
}

const CHUNK_BYTES = 1 << 20;
const NEWLINE = 0x0a;

/** The file's lines in order (a trailing '\r' dropped), read a megabyte at a time. */
export async function* readLines(file: string): AsyncGenerator<FileLine> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const buffer = Buffer.alloc(CHUNK_BYTES);
    let pending: Buffer[] = [];
    let position = 0;
    let number = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, position);
      if (bytesRead === 0) break;
      let from = 0;
      for (let at = buffer.indexOf(NEWLINE, 0); at >= 0 && at < bytesRead; at = buffer.indexOf(NEWLINE, at + 1)) {
        pending.push(buffer.subarray(from, at));
        yield { number: ++number, text: lineText(pending), end: position + at + 1, complete: true };
        pending = [];
        from = at + 1;
      }
      // Copied: the buffer is reused by the next read.
      if (from < bytesRead) pending.push(Buffer.from(buffer.subarray(from, bytesRead)));
      position += bytesRead;
    }
    if (pending.length > 0) yield { number: ++number, text: lineText(pending), end: position, complete: false };
  } finally {
    await handle.close();
  }
}

function lineText(parts: Buffer[]): string {
  const text = Buffer.concat(parts).toString('utf8');
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}

/** Lines in a file (a last line without a newline counts), counted without holding it. */
export async function countLines(file: string): Promise<number> {
  let count = 0;
  let lastByte = NEWLINE;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
    const bytes = chunk as Buffer;
    for (let at = bytes.indexOf(NEWLINE); at >= 0; at = bytes.indexOf(NEWLINE, at + 1)) count++;
    if (bytes.length > 0) lastByte = bytes[bytes.length - 1];
  }
  return lastByte === NEWLINE ? count : count + 1;
}

/** Appends whole lines synchronously: a line is in the file (the OS's) once append() returns. */
export class LineAppender {
  private readonly fd: number;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'a');
  }

  append(value: unknown): void {
    const bytes = Buffer.from(`${JSON.stringify(value)}\n`, 'utf8');
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done);
  }

  close(): void {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
  }
}

/**
 * Reads an output file of JSON lines before appending to it: each complete line parsed and
 * handed to `onLine`; a torn last line (no newline, or not JSON) is cut off. A line in the
 * middle that is not JSON means the file is not this job's output: that throws, because
 * appending to it would mix two jobs.
 */
export async function resumeLines(file: string, onLine: (value: unknown) => void): Promise<{ numLines: number; numTornBytes: number }> {
  if (!fs.existsSync(file)) return { numLines: 0, numTornBytes: 0 };
  let validEnd = 0;
  let numLines = 0;
  let torn: FileLine | null = null;
  for await (const line of readLines(file)) {
    if (torn !== null) throw new Error(`${file}: line ${torn.number} is not JSON; is this the output of this job?`);
    if (line.text.trim() === '') {
      validEnd = line.end;
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(line.text);
    } catch {
      torn = line;
      continue;
    }
    if (!line.complete) {
      torn = line;
      continue;
    }
    onLine(value);
    numLines++;
    validEnd = line.end;
  }
  const size = fs.statSync(file).size;
  if (size > validEnd) fs.truncateSync(file, validEnd);
  return { numLines, numTornBytes: size - validEnd };
}
