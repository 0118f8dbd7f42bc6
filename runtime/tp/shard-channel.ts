// Shared memory between rank 0 (the engine thread) and one shard worker: a control block
// of Int32 slots driven with Atomics, and fixed-size buffers for one chunk of rows. Jobs
// larger than a chunk are cut into chunks by rank 0, so the buffers never need to grow.

// A step's block tables vary in size and reach the shards as a message on a MessagePort,
// read synchronously (receiveMessageOnPort) by the first attention job that has `plan` set.

/** routing: an MLP job's answer, the checksum of the shard's routing (routingChecksum). */
export const SLOT = { seq: 0, done: 1, kind: 2, layer: 3, rows: 4, status: 5, errorBytes: 6, start: 7, plan: 8, routing: 9 } as const;
/** kvCache: allocate the shard's cache planes, `rows` blocks of `layer` tokens. */
export const JOB = { mlp: 1, lmHead: 2, stop: 3, attention: 4, kvCache: 5 } as const;

/** Rows per chunk of an MLP job. */
export const CHUNK_ROWS = 512;
const ERROR_BYTES = 2048;

export interface ChannelShape {
  hiddenSize: number;
  headDim: number;
  /** Widest vocabulary slice of any shard. */
  maxVocabSlice: number;
}

export interface ChannelBuffers {
  shape: ChannelShape;
  ctrl: SharedArrayBuffer;
  x: SharedArrayBuffer;
  /** RoPE cos then sin rows for an attention job, [rows, headDim / 2] each. */
  rope: SharedArrayBuffer;
  out: SharedArrayBuffer;
  error: SharedArrayBuffer;
}

export class ShardChannel {
  readonly ctrl: Int32Array;
  readonly x: Float32Array;
  readonly rope: Float32Array;
  readonly out: Float32Array;
  readonly error: Uint8Array;
  /** Rows of logits one LM-head chunk can carry. */
  readonly lmHeadRows: number;

  constructor(readonly buffers: ChannelBuffers) {
    this.ctrl = new Int32Array(buffers.ctrl);
    this.x = new Float32Array(buffers.x);
    this.rope = new Float32Array(buffers.rope);
    this.out = new Float32Array(buffers.out);
    this.error = new Uint8Array(buffers.error);
    this.lmHeadRows = Math.max(1, Math.floor(this.out.length / buffers.shape.maxVocabSlice));
  }

  static create(shape: ChannelShape): ShardChannel {
    const floats = (n: number) => new SharedArrayBuffer(4 * n);
    const outFloats = Math.max(CHUNK_ROWS * shape.hiddenSize, 16 * shape.maxVocabSlice);
    return new ShardChannel({
      shape,
      ctrl: floats(16),
      x: floats(CHUNK_ROWS * shape.hiddenSize),
      rope: floats(CHUNK_ROWS * shape.headDim),
      out: floats(outFloats),
      error: new SharedArrayBuffer(ERROR_BYTES),
    });
  }

  writeError(message: string): void {
    const bytes = new TextEncoder().encode(message).subarray(0, ERROR_BYTES);
    this.error.set(bytes);
    this.ctrl[SLOT.errorBytes] = bytes.length;
    this.ctrl[SLOT.status] = 1;
  }

  readError(): string {
    // TextDecoder refuses views of shared memory: copy first.
    return new TextDecoder().decode(this.error.slice(0, this.ctrl[SLOT.errorBytes]));
  }
}
