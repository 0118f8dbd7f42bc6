// Runs a streaming parser over deltas and rebuilds what an OpenAI client would: the content
// text and each call from its deltas (checking the id and name come first, and only once).
import type { ToolCallParser, ToolParseEvent } from '../../server/openai/tool-parsers/types.ts';

export interface StreamedTurn {
  content: string;
  calls: Array<{ id: string; name: string; arguments: string }>;
  events: ToolParseEvent[];
}

export function streamThrough(parser: ToolCallParser, deltas: readonly string[]): StreamedTurn {
  const events: ToolParseEvent[] = [];
  for (const delta of deltas) events.push(...parser.feed(delta));
  events.push(...parser.finish());
  let content = '';
  const calls: StreamedTurn['calls'] = [];
  for (const event of events) {
    if (event.type === 'content') {
      content += event.text;
      continue;
    }
    const { index, id, function: fn } = event.delta;
    if (index === calls.length) {
      if (id === undefined || fn.name === undefined) throw new Error(`call ${index} began without its id and name`);
      calls.push({ id, name: fn.name, arguments: fn.arguments ?? '' });
    } else if (index === calls.length - 1) {
      if (id !== undefined || fn.name !== undefined) throw new Error(`call ${index} sent its id or name twice`);
      calls[index].arguments += fn.arguments ?? '';
    } else {
      throw new Error(`call index ${index} out of order`);
    }
  }
  return { content, calls, events };
}
