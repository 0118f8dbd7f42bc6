// A chat request's tools (OpenAI's tools, tool_choice, parallel_tool_calls) -> what the
// template renders, which parser reads the turn, and the choice the grammar must enforce.
import type { ChatCompletionRequest } from '../schemas/chat.ts';
import type { ServedModel } from '../served-model.ts';
import type { TemplateTool } from '../tokenizer/chat-template.ts';
import { invalidRequest } from './errors.ts';
import type { ToolChoiceMode, ToolFunctionSpec } from './tool-parsers/tool-call-grammar.ts';
import type { ToolParserName } from './tool-parsers/types.ts';

export interface ToolPlan {
  /** Tools the template renders into the prompt; empty with none or tool_choice "none". */
  templateTools: TemplateTool[];
  /** The parser that reads this turn's output; null: no tool parsing, all text is content. */
  parser: ToolParserName | null;
  /** The functions the model may call; a call to any other is returned as content. */
  functions: ToolFunctionSpec[];
  /** What the turn must do: "auto" parses freely, "required" and a named tool are enforced by a grammar. */
  choice: ToolChoiceMode | 'none';
  parallelToolCalls: boolean;
}

const NO_TOOLS: ToolPlan = { templateTools: [], parser: null, functions: [], choice: 'none', parallelToolCalls: true };

function choiceOf(body: ChatCompletionRequest, numTools: number): ToolChoiceMode | 'none' {
  const choice = body.tool_choice;
  if (choice === undefined) return numTools > 0 ? 'auto' : 'none';
  if (typeof choice === 'string') return choice;
  return { name: choice.function.name };
}

export function planTools(body: ChatCompletionRequest, model: ServedModel): ToolPlan {
  const tools = body.tools ?? [];
  const choice = choiceOf(body, tools.length);
  if (choice === 'none') return NO_TOOLS;
  if (tools.length === 0) {
    if (choice === 'auto') return NO_TOOLS;
    throw invalidRequest("Invalid 'tool_choice': it requires a tool call, but 'tools' is empty.", 'tool_choice');
  }
  if (typeof choice === 'object' && !tools.some((t) => t.function.name === choice.name)) {
    throw invalidRequest(`Invalid 'tool_choice': function "${choice.name}" is not among 'tools'.`, 'tool_choice');
  }
  const parser = model.parsers.tool;
  if (parser === null) {
    throw invalidRequest(
      "'tools' are not available for this model: its chat template writes no tool-call markup this server knows " +
        '(start the server with --tool-call-parser NAME to choose a parser).',
      'tools',
    );
  }
  return {
    templateTools: tools,
    parser,
    functions: tools.map((t) => ({ name: t.function.name, parameters: t.function.parameters })),
    choice,
    parallelToolCalls: body.parallel_tool_calls ?? true,
  };
}
