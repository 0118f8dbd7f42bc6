// Tool-call parsers by name (`--tool-call-parser auto|NAME`), and `auto`: the markup the
// checkpoint's chat template writes, else the model family.
import { DeepSeekV3ToolParser } from './deepseek-v3.ts';
import { DeepSeekV31ToolParser } from './deepseek-v31.ts';
import { HermesToolParser } from './hermes.ts';
import { MistralToolParser } from './mistral.ts';
import { TOOL_PARSER_NAMES, type ToolCallParser, type ToolParserName, type ToolParserOptions } from './types.ts';

export function isToolParserName(name: string): name is ToolParserName {
  return (TOOL_PARSER_NAMES as readonly string[]).includes(name);
}

/** A fresh parser for one choice of one response (parsers hold per-stream state). */
export function createToolParser(name: ToolParserName, options: ToolParserOptions = {}): ToolCallParser {
  switch (name) {
    case 'deepseek_v3':
      return new DeepSeekV3ToolParser(options);
    case 'deepseek_v31':
      return new DeepSeekV31ToolParser(options);
    case 'hermes':
      return new HermesToolParser(options);
    case 'mistral':
      return new MistralToolParser(options);
  }
}

/**
 * The parser for `auto`: from the markup the chat template renders for assistant tool calls
 * (the model was trained to write the same), else from the model family; null when neither
 * says (tools are then refused).
 */
export function detectToolParser(chatTemplate: string | null, family: string | null): ToolParserName | null {
  if (chatTemplate !== null) {
    if (chatTemplate.includes('tool▁sep')) return chatTemplate.includes('```json') ? 'deepseek_v3' : 'deepseek_v31';
    if (chatTemplate.includes('<tool_call>')) return 'hermes';
    if (chatTemplate.includes('[TOOL_CALLS]')) return 'mistral';
  }
  const f = (family ?? '').toLowerCase();
  if (f.startsWith('deepseek')) return 'deepseek_v3';
  if (f.startsWith('qwen')) return 'hermes';
  if (f.startsWith('mixtral') || f.startsWith('mistral')) return 'mistral';
  return null;
}
