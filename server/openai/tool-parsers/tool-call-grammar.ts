// tool_choice "required" or a named function, enforced by constrained decoding: a structural
// tag that makes the model write well-formed calls in its own markup (the same markup the
// format's parser reads), with arguments matching each function's JSON schema. For "auto"
// the same tags sit behind their trigger: free text until the model opens a call, then the
// call must be well-formed.
import type { StructuralTagFormat, TagFormat } from '@mlc-ai/web-xgrammar';
import { GrammarCompileError, type GrammarSpec } from '../../engine/grammar/grammar-spec.ts';
import { DEEPSEEK_CALL_BEGIN, DEEPSEEK_CALL_END, DEEPSEEK_CALLS_BEGIN, DEEPSEEK_CALLS_END, DEEPSEEK_SEP } from './deepseek-v3.ts';
import { HERMES_CALL_CLOSE, HERMES_CALL_OPEN } from './hermes.ts';
import { MISTRAL_ARGS, MISTRAL_TOOL_CALLS } from './mistral.ts';
import type { ToolParserName } from './types.ts';

export interface ToolFunctionSpec {
  name: string;
  /** The function's JSON schema for its arguments; absent: any object. */
  parameters?: unknown;
}

export type ToolChoiceMode = 'auto' | 'required' | { name: string };

export interface ToolCallGrammarOptions {
  tools: readonly ToolFunctionSpec[];
  parser: ToolParserName;
  choice: ToolChoiceMode;
  parallelToolCalls: boolean;
  /**
   * The model thinks before it answers: free text up to endTag comes first. startTag null
   * when the prompt already opened the reasoning (DeepSeek-R1 style templates).
   */
  reasoning?: { startTag: string | null; endTag: string };
  /** Mistral's shape: a JSON list (before tokenizer v11, the default) or name[ARGS]{...}. */
  mistralStyle?: 'list' | 'args';
}

/** What a format contributes: its call tags, how calls are separated, what opens them. */
interface FormatTags {
  tags: TagFormat[];
  separator: string;
  triggers: string[];
  /** The tags are one block holding every call: it is written once. */
  singleBlock: boolean;
}

const FUNCTION_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

function argumentsFormat(tool: ToolFunctionSpec): StructuralTagFormat {
  const schema = tool.parameters ?? { type: 'object' };
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new GrammarCompileError('structural_tag', `the parameters of tool "${tool.name}" are not a JSON schema object`);
  }
  return { type: 'json_schema', json_schema: schema as Record<string, unknown> };
}

function tag(begin: string, tool: ToolFunctionSpec, end: string): TagFormat {
  return { type: 'tag', begin, content: argumentsFormat(tool), end };
}

/** Calls wrapped in one outer block: the block is the only tag, the calls repeat inside it. */
function block(begin: string, calls: TagFormat[], separator: string, end: string, parallel: boolean): FormatTags {
  const content: StructuralTagFormat = {
    type: 'tags_with_separator',
    tags: calls,
    separator,
    at_least_one: true,
    stop_after_first: !parallel,
  };
  return { tags: [{ type: 'tag', begin, content, end }], separator: ' ', triggers: [begin], singleBlock: true };
}

function formatTags(options: ToolCallGrammarOptions, tools: readonly ToolFunctionSpec[]): FormatTags {
  const parallel = options.parallelToolCalls;
  switch (options.parser) {
    case 'hermes':
      return {
        tags: tools.map((t) => tag(`${HERMES_CALL_OPEN}\n{"name": "${t.name}", "arguments": `, t, `}\n${HERMES_CALL_CLOSE}`)),
        separator: '\n',
        triggers: [HERMES_CALL_OPEN],
        singleBlock: false,
      };
    case 'deepseek_v3': {
      const calls = tools.map((t) =>
        tag(`${DEEPSEEK_CALL_BEGIN}function${DEEPSEEK_SEP}${t.name}\n\`\`\`json\n`, t, `\n\`\`\`${DEEPSEEK_CALL_END}`),
      );
      return block(DEEPSEEK_CALLS_BEGIN, calls, '\n', DEEPSEEK_CALLS_END, parallel);
    }
    case 'deepseek_v31': {
      // Calls follow each other with nothing between, and xgrammar wants a non-empty
      // separator: the call-begin token serves as one (the first comes with the block's begin).
      const calls = tools.map((t) => tag(`${t.name}${DEEPSEEK_SEP}`, t, DEEPSEEK_CALL_END));
      return block(`${DEEPSEEK_CALLS_BEGIN}${DEEPSEEK_CALL_BEGIN}`, calls, DEEPSEEK_CALL_BEGIN, DEEPSEEK_CALLS_END, parallel);
    }
    case 'mistral':
      if (options.mistralStyle === 'args') {
        // Calls follow each other with nothing between; xgrammar has no empty separator and no
        // tag with an empty end to hang them on, so this shape allows one call per turn.
        const tags = tools.map((t) => tag(`${MISTRAL_TOOL_CALLS}${t.name}${MISTRAL_ARGS}`, t, ''));
        return { tags, separator: ' ', triggers: [MISTRAL_TOOL_CALLS], singleBlock: true };
      }
      return block(
        `${MISTRAL_TOOL_CALLS} [`,
        tools.map((t) => tag(`{"name": "${t.name}", "arguments": `, t, '}')),
        ', ',
        ']',
        parallel,
      );
  }
}

function chosenTools(options: ToolCallGrammarOptions): readonly ToolFunctionSpec[] {
  for (const tool of options.tools) {
    if (!FUNCTION_NAME.test(tool.name))
      throw new GrammarCompileError('structural_tag', `tool name "${tool.name}" is not 1-64 letters, digits, _ . : -`);
  }
  const { choice } = options;
  if (typeof choice === 'object') {
    const named = options.tools.filter((t) => t.name === choice.name);
    if (named.length === 0)
      throw new GrammarCompileError('structural_tag', `tool_choice names "${choice.name}", which is not among the tools`);
    return named;
  }
  if (options.tools.length === 0) throw new GrammarCompileError('structural_tag', 'no tools to call');
  return options.tools;
}

/** The grammar that makes the model's turn tool calls (or, for "auto", allows only well-formed ones). */
export function toolCallGrammar(options: ToolCallGrammarOptions): GrammarSpec {
  const { tags, separator, triggers, singleBlock } = formatTags(options, chosenTools(options));
  const stopAfterFirst = singleBlock || !options.parallelToolCalls;
  const calls: StructuralTagFormat =
    options.choice === 'auto'
      ? { type: 'triggered_tags', triggers, tags, at_least_one: false, stop_after_first: stopAfterFirst }
      : { type: 'tags_with_separator', tags, separator, at_least_one: true, stop_after_first: stopAfterFirst };
  return options.reasoning === undefined ? structuralTag(calls) : afterReasoning(calls, options.reasoning);
}

/** Free reasoning text up to its end tag, then the format: how a thinking model's output is constrained. */
export function afterReasoning(format: StructuralTagFormat, reasoning: { startTag: string | null; endTag: string }): GrammarSpec {
  // Models leave a blank line after </think> (Qwen3, DeepSeek-R1): up to 4 whitespace characters.
  const thinking: StructuralTagFormat = {
    type: 'tag',
    begin: reasoning.startTag ?? '',
    content: { type: 'any_text' },
    end: reasoning.endTag,
  };
  const gap: StructuralTagFormat = { type: 'grammar', grammar: 'root ::= [ \\n]{0,4}' };
  return structuralTag({ type: 'sequence', elements: [thinking, gap, format] });
}

function structuralTag(format: StructuralTagFormat): GrammarSpec {
  return { type: 'structural_tag', structuralTag: { type: 'structural_tag', format } };
}
