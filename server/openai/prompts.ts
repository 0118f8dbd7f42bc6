// Request prompts -> token ids, checked against the vocabulary and the context before they
// reach the engine, so a bad prompt is a 400 naming the field rather than a failed stream.
import type { ChatMessage } from '../schemas/chat.ts';
import type { CompletionRequest } from '../schemas/completions.ts';
import type { ServedModel } from '../served-model.ts';
import { ChatTemplateError, type TemplateMessage } from '../tokenizer/chat-template.ts';
import { invalidRequest } from './errors.ts';

/** Text parts are joined by newlines, as vLLM does for text-only content arrays. */
export function messageText(content: ChatMessage['content']): string {
  if (content === null) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => part.text).join('\n');
}

export function renderChat(model: ServedModel, messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
  if (model.chatTemplate === null) throw invalidRequest(`Chat is unavailable: ${model.chatTemplateProblem ?? 'no chat template'}.`, 'messages');
  const templateMessages: TemplateMessage[] = messages.map((m) => ({ role: m.role, content: messageText(m.content) }));
  try {
    return model.chatTemplate.render(templateMessages, addGenerationPrompt);
  } catch (err) {
    if (err instanceof ChatTemplateError) throw invalidRequest(err.message, 'messages');
    throw err;
  }
}

/** The rendered template already holds BOS where the model wants it: no special tokens added. */
export function chatPromptIds(model: ServedModel, messages: readonly ChatMessage[], addGenerationPrompt = true): number[] {
  const ids = model.tokenizer.encode(renderChat(model, messages, addGenerationPrompt), false);
  checkPromptLength(model, ids, 'messages');
  return ids;
}

function isTokenIds(value: unknown[]): value is number[] {
  return value.length > 0 && typeof value[0] === 'number';
}

/** A string, strings, token ids or token-id arrays -> one id list per prompt (text gets BOS). */
export function completionPromptIds(model: ServedModel, prompt: CompletionRequest['prompt']): number[][] {
  const prompts: Array<string | number[]> = typeof prompt === 'string' ? [prompt] : isTokenIds(prompt) ? [prompt] : prompt;
  return prompts.map((p, index) => {
    const param = prompts.length === 1 && prompt === p ? 'prompt' : `prompt[${index}]`;
    const ids = typeof p === 'string' ? model.tokenizer.encode(p, true) : p;
    if (ids.length === 0) throw invalidRequest(`Invalid '${param}': the prompt has no tokens.`, param);
    const bad = ids.find((id) => id >= model.vocabSize);
    if (bad !== undefined) throw invalidRequest(`Invalid '${param}': token id ${bad} is outside the vocabulary (0..${model.vocabSize - 1}).`, param);
    checkPromptLength(model, ids, param);
    return ids;
  });
}

/** At least one token must fit after the prompt. */
export function checkPromptLength(model: ServedModel, ids: readonly number[], param: string): void {
  if (ids.length < model.maxModelLen) return;
  throw invalidRequest(
    `This model's maximum context length is ${model.maxModelLen} tokens, but '${param}' makes a prompt of ${ids.length} tokens; ` +
      'shorten it so that at least one token can be generated.',
    param,
    'context_length_exceeded',
  );
}
