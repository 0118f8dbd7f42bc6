// A chat body -> its prompt (the messages, tools and chat_template_kwargs through the
// checkpoint's template), the grammar it decodes under, and how its output is parsed.
import type { OutputConstraint } from '../engine/api.ts';
import type { ChatCompletionRequest } from '../schemas/chat.ts';
import type { ServedModel } from '../served-model.ts';
import type { ChatOutputOptions } from './chat-output.ts';
import { planTools } from './chat-tools.ts';
import { chatGrammar } from './output-grammar.ts';
import { chatPromptIdsOf, renderChat } from './prompts.ts';
import { reasoningOpening } from './reasoning-parser.ts';

export interface ChatPlan {
  prompt: number[];
  grammar: OutputConstraint | null;
  /** null: the output is all content (no tools, no reasoning parser). */
  output: ChatOutputOptions | null;
}

export function planChat(body: ChatCompletionRequest, model: ServedModel): ChatPlan {
  const tools = planTools(body, model);
  const chatTemplateKwargs = body.chat_template_kwargs ?? {};
  const rendered = renderChat(model, body.messages, {
    addGenerationPrompt: body.add_generation_prompt ?? true,
    tools: tools.templateTools,
    chatTemplateKwargs,
  });
  const reasoning = model.parsers.reasoning === null ? null : reasoningOpening(rendered, chatTemplateKwargs);
  const grammar = chatGrammar(body, { tools, reasoning, chatTemplate: model.chatTemplate });
  const toolOutput =
    tools.parser === null
      ? null
      : {
          parser: tools.parser,
          toolNames: tools.functions.map((f) => f.name),
          // "required" and named choices get a grammar that stops after the first call.
          firstCallOnly: !tools.parallelToolCalls && tools.choice === 'auto',
        };
  return {
    prompt: chatPromptIdsOf(model, rendered),
    grammar,
    output: toolOutput === null && reasoning === null ? null : { tools: toolOutput, reasoning },
  };
}
