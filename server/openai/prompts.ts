// Request prompts -> token ids, checked against the vocabulary and the context before they
// reach the engine, so a bad prompt is a 400 naming the field rather than a failed stream.
import { firstOutsideVocabulary, outsideVocabularyMessage } from '../../models/vocabulary.ts';
import type { ChatMessage } from '../schemas/chat.ts';
import type { CompletionRequest } from '../schemas/completions.ts';
import type { ServedModel } from '../served-model.ts';
import { ChatTemplateError, type RenderOptions, type TemplateMessage } from '../tokenizer/chat-template.ts';
import { invalidRequest } from './errors.ts';

/** Text parts are joined by newlines, as vLLM does for text-only content arrays. */
export function messageText(content: ChatMessage['content']): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => part.text).join('\n');
}

/** A message as the template sees it; content may be left out only beside tool calls. */
function templateMessage(m: ChatMessage, index: number): TemplateMessage {
  const calls = m.tool_calls !== undefined && m.tool_calls.length > 0 ? m.tool_calls : undefined;
  if (calls !== undefined && m.role !== 'assistant')
    throw invalidRequest(
      `Invalid 'messages[${index}].tool_calls': only assistant messages carry tool calls.`,
      `messages[${index}].tool_calls`,
    );
  if (m.content === undefined && calls === undefined)
    throw invalidRequest(`Missing required parameter: 'messages[${index}].content'.`, `messages[${index}].content`);
  const message: TemplateMessage = { role: m.role, content: calls !== undefined && m.content == null ? null : messageText(m.content) };
  if (calls !== undefined) message.tool_calls = calls;
  if (m.tool_call_id !== undefined) message.tool_call_id = m.tool_call_id;
  if (m.name !== undefined) message.name = m.name;
  if (m.reasoning_content !== undefined) message.reasoning_content = m.reasoning_content;
  return message;
}

/** What a chat prompt is rendered with besides the messages: a boolean is add_generation_prompt alone. */
export type ChatRenderOptions = boolean | RenderOptions;

export function renderChat(model: ServedModel, messages: readonly ChatMessage[], options: ChatRenderOptions): string {
  if (model.chatTemplate === null)
    throw invalidRequest(`Chat is unavailable: ${model.chatTemplateProblem ?? 'no chat template'}.`, 'messages');
  const templateMessages = messages.map(templateMessage);
  try {
    return model.chatTemplate.render(templateMessages, options);
  } catch (err) {
    if (err instanceof ChatTemplateError) throw invalidRequest(err.message, 'messages');
    throw err;
  }
}

/**
 * How much a tokenizer's normaliser may shrink text before tokens are cut from it (composing
 * a letter and its accents into one character, say); no common normaliser comes near it.
 */
const NORMALISER_SHRINK = 4;

/**
 * Refuses text too long for the context before it is tokenised. Tokenising runs on the main
 * thread and text without spaces is slow to tokenise with this tokenizer library, so a
 * multi-megabyte prompt would stall every other request for tens of seconds only to be
 * refused afterwards. No token stands for more than maxTokenChars characters, so text longer
 * than this bound has more tokens than the context holds.
 */
function checkTextFits(model: ServedModel, text: string, param: string): void {
  const limit = model.maxModelLen * model.tokenizer.maxTokenChars * NORMALISER_SHRINK;
  if (text.length <= limit) return;
  throw invalidRequest(
    `This model's maximum context length is ${model.maxModelLen} tokens, but '${param}' is ${text.length} characters long, ` +
      `more than any prompt of that many tokens (at most ${limit} characters); shorten it.`,
    param,
    'context_length_exceeded',
  );
}

/** Token ids of text that checkTextFits() passed. */
export function encodeText(model: ServedModel, text: string, param: string, addSpecialTokens: boolean): number[] {
  checkTextFits(model, text, param);
  return model.tokenizer.encode(text, addSpecialTokens);
}

/** The rendered template already holds BOS where the model wants it: no special tokens added. */
export function chatPromptIds(model: ServedModel, messages: readonly ChatMessage[], options: ChatRenderOptions = true): number[] {
  return chatPromptIdsOf(model, renderChat(model, messages, options));
}

/** The ids of a rendered chat prompt, checked against the context. */
export function chatPromptIdsOf(model: ServedModel, rendered: string): number[] {
  const ids = encodeText(model, rendered, 'messages', false);
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
    const ids = typeof p === 'string' ? encodeText(model, p, param, true) : p;
    if (ids.length === 0) throw invalidRequest(`Invalid '${param}': the prompt has no tokens.`, param);
    const bad = firstOutsideVocabulary(ids, model.vocabSize);
    if (bad >= 0) throw invalidRequest(`Invalid '${param}': ${outsideVocabularyMessage(ids[bad], model.vocabSize)}.`, param);
    checkPromptLength(model, ids, param);
    return ids;
  });
}

/** What `echo` repeats of each prompt: the text as sent, or the decoded token ids (as vLLM). */
export interface EchoPrompt {
  text: string;
  ids: readonly number[];
}

export function echoPrompts(model: ServedModel, prompt: CompletionRequest['prompt'], ids: readonly number[][]): EchoPrompt[] {
  const sent: unknown[] = typeof prompt === 'string' ? [prompt] : prompt;
  return ids.map((promptIds, i) => {
    const text = sent[i];
    return { text: typeof text === 'string' ? text : model.tokenizer.decode([...promptIds]), ids: promptIds };
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
