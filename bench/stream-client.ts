// One streaming completion over real HTTP, timed from the client's side: when it was sent,
// when each content chunk arrived, and the token counts the server reported in its usage chunk.

export interface StreamTiming {
  sentAt: number;
  /** Arrival time of each chunk that carried text or a finish reason, in order. */
  chunkTimes: number[];
  promptTokens: number;
  completionTokens: number;
  finishReason: string | null;
  error: string | null;
}

export interface StreamRequest {
  prompt: number[];
  maxTokens: number;
}

export async function timedStream(baseUrl: string, model: string, req: StreamRequest): Promise<StreamTiming> {
  const timing: StreamTiming = {
    sentAt: performance.now(),
    chunkTimes: [],
    promptTokens: 0,
    completionTokens: 0,
    finishReason: null,
    error: null,
  };
  const body = {
    model,
    prompt: req.prompt,
    max_tokens: req.maxTokens,
    ignore_eos: true, // every request generates exactly maxTokens: a fixed output mix
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  };
  try {
    const response = await fetch(`${baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
    let buffer = '';
    for await (const piece of response.body!.pipeThrough(new TextDecoderStream())) {
      buffer += piece;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        readEvent(buffer.slice(0, end), timing);
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (err) {
    timing.error = err instanceof Error ? err.message : String(err);
  }
  return timing;
}

interface CompletionChunk {
  choices: Array<{ text: string; finish_reason: string | null }>;
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
}

function readEvent(event: string, timing: StreamTiming): void {
  if (!event.startsWith('data: ') || event === 'data: [DONE]') return;
  const chunk = JSON.parse(event.slice(6)) as CompletionChunk;
  const now = performance.now();
  if (chunk.usage) {
    timing.promptTokens = chunk.usage.prompt_tokens;
    timing.completionTokens = chunk.usage.completion_tokens;
  }
  const choice = chunk.choices[0];
  if (!choice) return;
  if (choice.text !== '' || choice.finish_reason === null) timing.chunkTimes.push(now);
  if (choice.finish_reason) timing.finishReason = choice.finish_reason;
}
