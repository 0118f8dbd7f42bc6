// Which tool-call parser and reasoning parser a model gets (`--tool-call-parser`,
// `--reasoning-parser`): chosen once per model, `auto` from the markup its chat template
// writes and then its family; and the markup strings the engine must keep in the generated
// text even where the vocabulary marks them special.
import {
  DEEPSEEK_CALL_BEGIN,
  DEEPSEEK_CALL_END,
  DEEPSEEK_CALLS_BEGIN,
  DEEPSEEK_CALLS_END,
  DEEPSEEK_SEP,
} from './tool-parsers/deepseek-v3.ts';
import { HERMES_CALL_CLOSE, HERMES_CALL_OPEN } from './tool-parsers/hermes.ts';
import { MISTRAL_ARGS, MISTRAL_CALL_ID, MISTRAL_TOOL_CALLS } from './tool-parsers/mistral.ts';
import { detectToolParser } from './tool-parsers/registry.ts';
import { TOOL_PARSER_NAMES, type ToolParserName } from './tool-parsers/types.ts';

/** Both split <think>...</think>; the names are vLLM's, for the models that write it. */
export const REASONING_PARSER_NAMES = ['deepseek_r1', 'qwen3'] as const;
export type ReasoningParserName = (typeof REASONING_PARSER_NAMES)[number];

export const TOOL_PARSER_SETTINGS = ['auto', 'none', ...TOOL_PARSER_NAMES] as const;
export type ToolParserSetting = (typeof TOOL_PARSER_SETTINGS)[number];
export const REASONING_PARSER_SETTINGS = ['auto', 'none', ...REASONING_PARSER_NAMES] as const;
export type ReasoningParserSetting = (typeof REASONING_PARSER_SETTINGS)[number];

export const REASONING_START = '<think>';
export const REASONING_END = '</think>';

export interface ParserSettings {
  toolCallParser: ToolParserSetting;
  reasoningParser: ReasoningParserSetting;
}

export const DEFAULT_PARSER_SETTINGS: ParserSettings = { toolCallParser: 'auto', reasoningParser: 'auto' };

export interface ModelParsers {
  /** null: the model has none, and requests with tools are refused. */
  tool: ToolParserName | null;
  /** null: all output is content. */
  reasoning: ReasoningParserName | null;
}

/** `auto`: a template that writes <think> (Qwen3, DeepSeek-R1) gets the parser its family uses. */
function detectReasoningParser(chatTemplate: string | null, family: string | null): ReasoningParserName | null {
  if (chatTemplate === null || !chatTemplate.includes(REASONING_START)) return null;
  return (family ?? '').toLowerCase().startsWith('qwen') ? 'qwen3' : 'deepseek_r1';
}

export function resolveModelParsers(settings: ParserSettings, chatTemplate: string | null, family: string | null): ModelParsers {
  const { toolCallParser: tool, reasoningParser: reasoning } = settings;
  return {
    tool: tool === 'none' ? null : tool === 'auto' ? detectToolParser(chatTemplate, family) : tool,
    reasoning: reasoning === 'none' ? null : reasoning === 'auto' ? detectReasoningParser(chatTemplate, family) : reasoning,
  };
}

const TOOL_MARKUP: Readonly<Record<ToolParserName, readonly string[]>> = {
  deepseek_v3: [DEEPSEEK_CALLS_BEGIN, DEEPSEEK_CALLS_END, DEEPSEEK_CALL_BEGIN, DEEPSEEK_CALL_END, DEEPSEEK_SEP],
  deepseek_v31: [DEEPSEEK_CALLS_BEGIN, DEEPSEEK_CALLS_END, DEEPSEEK_CALL_BEGIN, DEEPSEEK_CALL_END, DEEPSEEK_SEP],
  hermes: [HERMES_CALL_OPEN, HERMES_CALL_CLOSE],
  mistral: [MISTRAL_TOOL_CALLS, MISTRAL_ARGS, MISTRAL_CALL_ID],
};

/**
 * The markup the parsers read: kept in the generated text (and allowed in grammars) even
 * when the vocabulary marks it special, as Mistral's tokenizer does [TOOL_CALLS].
 */
export function parserMarkup(parsers: ModelParsers): string[] {
  return [
    ...(parsers.tool === null ? [] : TOOL_MARKUP[parsers.tool]),
    ...(parsers.reasoning === null ? [] : [REASONING_START, REASONING_END]),
  ];
}
