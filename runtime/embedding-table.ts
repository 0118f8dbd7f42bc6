// The token embedding table, read a row at a time from the compiled f32 file instead of held
// in memory: a step reads only its tokens' rows (a few KiB each), so the table (0.4-1.2 GB at
// real vocabulary sizes) costs no resident memory; the page cache keeps hot rows.
import { closeSync, openSync, readSync } from 'node:fs';
import { isTokenId, outsideVocabularyMessage } from '../models/vocabulary.ts';
import type { StepSequence, StepSlot } from './step-batch.ts';

export class EmbeddingTable {
  private fd: number | null;

  constructor(
    readonly path: string,
    readonly hiddenSize: number,
  ) {
    this.fd = openSync(path, 'r');
  }

  /** Copies row `id` into out[offset, offset + hiddenSize). */
  copyRow(id: number, out: Float32Array, offset: number): void {
    if (this.fd === null) throw new Error('the embedding table is closed');
    const bytes = this.hiddenSize * 4;
    const view = new Uint8Array(out.buffer, out.byteOffset + offset * 4, bytes);
    let done = 0;
    while (done < bytes) {
      const read = readSync(this.fd, view, done, bytes - done, id * bytes + done);
      if (read === 0) throw new RangeError(`${this.path} ends before row ${id}`);
      done += read;
    }
  }

  /** The hidden states a step starts from: each sequence's tokens at its slot's rows; every id is checked. */
  embedStep(batch: readonly StepSequence[], slots: readonly StepSlot[], numTokens: number, vocabSize: number): Float32Array {
    const h = this.hiddenSize;
    const hidden = new Float32Array(numTokens * h);
    slots.forEach((s, b) => {
      for (let i = 0; i < s.numTokens; i++) {
        const id = batch[b].tokens[i];
        if (!isTokenId(id, vocabSize)) throw new RangeError(outsideVocabularyMessage(id, vocabSize));
        this.copyRow(id, hidden, (s.row + i) * h);
      }
    });
    return hidden;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
