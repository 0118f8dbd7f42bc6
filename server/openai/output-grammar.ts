// The grammar a request decodes under, if any: its output constraint (response_format,
// structured_outputs, guided_*) or, for tool_choice "required" or a named function, the
// tool-call grammar in the model's own markup. On a thinking model either starts after the
// reasoning: the model thinks freely, then the constraint applies.
import type { StructuralTagFormat } from '@mlc-ai/web-xgrammar';
import type { GrammarSpec, OutputConstraint } from '../engine/api.ts';
import { choiceGrammar, GrammarCompileError } from '../engine/grammar/grammar-spec.ts';
import type { ChatTemplate } from '../tokenizer/chat-template.ts';
import type { ToolPlan } from './chat-tools.ts';
import { invalidRequest } from './errors.ts';
import { REASONING_END, REASONING_START } from './model-parsers.ts';
import type { ReasoningParserOptions } from './reasoning-parser.ts';
import { structuredOutputFromRequest, uncompilableConstraint } from './structured-output.ts';
import { afterReasoning, toolCallGrammar } from './tool-parsers/tool-call-grammar.ts';

type Body = Readonly<Record<string, unknown>>;

/** The constraint of a completions request (no tools, no reasoning). */
export function completionGrammar(body: Body): OutputConstraint | null {
  const structured = structuredOutputFromRequest(body);
  return structured === null ? null : { spec: structured.spec, param: structured.field };
}

/** The spec as one element of a structural tag, so that it can follow the reasoning. */
export function structuralFormat(spec: GrammarSpec): StructuralTagFormat {
  switch (spec.type) {
    case 'json_object':
      return { type: 'json_schema', json_schema: { type: 'object', additionalProperties: true } };
    case 'json_schema':
      if (typeof spec.schema !== 'boolean' && (typeof spec.schema !== 'object' || spec.schema === null || Array.isArray(spec.schema)))
        throw new GrammarCompileError('json_schema', 'the schema must be a JSON object (or a boolean)');
      return { type: 'json_schema', json_schema: spec.schema as Record<string, unknown> | boolean };
    case 'regex':
      return { type: 'regex', pattern: spec.pattern };
    case 'grammar':
      return { type: 'grammar', grammar: spec.grammar };
    case 'choice':
      return { type: 'grammar', grammar: choiceGrammar(spec.choices) };
    case 'structural_tag':
      return spec.structuralTag.format;
  }
}

export interface ChatGrammarContext {
  tools: ToolPlan;
  /** The request's reasoning opening; null when the model does not think (or thinking is off). */
  reasoning: ReasoningParserOptions | null;
  chatTemplate: ChatTemplate | null;
}

function reasoningTags(reasoning: ReasoningParserOptions): { startTag: string | null; endTag: string } {
  return { startTag: reasoning.startsInReasoning ? null : REASONING_START, endTag: REASONING_END };
}

/** Mistral's newer templates write name[ARGS]{...} calls; the older ones a JSON list. */
function mistralStyle(chatTemplate: ChatTemplate | null): 'list' | 'args' {
  return chatTemplate?.source.includes('[ARGS]') === true ? 'args' : 'list';
}

function toolGrammar(ctx: ChatGrammarContext, choice: 'required' | { name: string }): OutputConstraint {
  const { tools, reasoning } = ctx;
  try {
    const spec = toolCallGrammar({
      tools: tools.functions,
      parser: tools.parser!,
      choice,
      parallelToolCalls: tools.parallelToolCalls,
      ...(reasoning === null ? {} : { reasoning: reasoningTags(reasoning) }),
      mistralStyle: mistralStyle(ctx.chatTemplate),
    });
    return { spec, param: 'tools' };
  } catch (err) {
    if (err instanceof GrammarCompileError) throw uncompilableConstraint({ field: 'tools' }, err.reason);
    throw err;
  }
}

/** The constraint of a chat request; throws a 400 for one that cannot be honoured. */
export function chatGrammar(body: Body, ctx: ChatGrammarContext): OutputConstraint | null {
  const structured = structuredOutputFromRequest(body);
  const choice = ctx.tools.choice;
  if (choice === 'required' || typeof choice === 'object') {
    if (structured !== null) {
      throw invalidRequest(`'${structured.field}' cannot be combined with a tool_choice that requires a tool call.`, structured.field);
    }
    return toolGrammar(ctx, choice);
  }
  if (structured === null) return null;
  if (ctx.reasoning === null) return { spec: structured.spec, param: structured.field };
  try {
    return { spec: afterReasoning(structuralFormat(structured.spec), reasoningTags(ctx.reasoning)), param: structured.field };
  } catch (err) {
    if (err instanceof GrammarCompileError) throw uncompilableConstraint(structured, err.reason);
    throw err;
  }
}
