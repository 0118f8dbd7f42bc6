// Server-sent events as OpenAI streams them: "data: {chunk}\n\n" per chunk, an optional usage
// chunk, then "data: [DONE]\n\n". A failure after the stream began is one event carrying the
// error envelope, then the end of the stream.
import type { ServerResponse } from 'node:http';
import { ApiError, internalError } from './errors.ts';
import type { Generation } from './generation.ts';
import type { PreparedRequest } from './requests.ts';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Proxies such as nginx would otherwise buffer the stream.
  'x-accel-buffering': 'no',
};

/** Aborts when the client closes the connection before the response has been sent in full. */
export function disconnectSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

class EventWriter {
  constructor(private readonly res: ServerResponse) {}

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Writes one event; waits while the client reads slower than we write. */
  async send(data: string): Promise<void> {
    if (this.closed) return;
    if (this.res.write(`data: ${data}\n\n`)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  end(): void {
    if (!this.closed) this.res.end();
  }
}

export async function streamSse(
  res: ServerResponse,
  generation: Generation,
  prepared: PreparedRequest,
  log: (message: string) => void,
): Promise<void> {
  const writer = new EventWriter(res);
  res.writeHead(200, SSE_HEADERS);
  try {
    for (const chunk of prepared.format.openingChunks(prepared.requests.length)) await writer.send(JSON.stringify(chunk));
    for await (const update of generation.updates()) {
      for (const chunk of prepared.format.updateChunks(update)) await writer.send(JSON.stringify(chunk));
      if (writer.closed) break;
    }
    if (prepared.includeUsage) await writer.send(JSON.stringify(prepared.format.usageChunk(generation.usage)));
    await writer.send('[DONE]');
  } catch (err) {
    const apiError = err instanceof ApiError ? err : internalError();
    if (!(err instanceof ApiError)) log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    await writer.send(JSON.stringify(apiError.toBody()));
  } finally {
    generation.close();
    writer.end();
  }
}
