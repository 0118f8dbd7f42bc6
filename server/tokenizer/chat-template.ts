// Chat templates from a checkpoint, rendered with @huggingface/jinja as transformers'
// apply_chat_template does: the template sees the messages, add_generation_prompt and the
// special token strings. The rendered text already holds BOS where the model wants it, so it
// is tokenised without adding special tokens again.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { specialTokenText, type TokenizerConfig } from './tokenizer.ts';

export interface TemplateMessage {
  role: string;
  content: string;
}

/** The template is missing, does not parse, or refused the conversation (raise_exception). */
export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates. */
function configTemplate(config: TokenizerConfig): string | null {
  const value = config.chat_template;
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return null;
  const named = value.filter(
    (entry): entry is { name: string; template: string } =>
      typeof entry === 'object' && entry !== null && typeof entry.name === 'string' && typeof entry.template === 'string',
  );
  return (named.find((entry) => entry.name === 'default') ?? named[0])?.template ?? null;
}

/** Newer checkpoints keep the template beside tokenizer_config.json instead of inside it. */
function fileTemplate(modelDir: string): string | null {
  const jinjaFile = join(modelDir, 'chat_template.jinja');
  if (existsSync(jinjaFile)) return readFileSync(jinjaFile, 'utf8');
  const jsonFile = join(modelDir, 'chat_template.json');
  if (!existsSync(jsonFile)) return null;
  const parsed: unknown = JSON.parse(readFileSync(jsonFile, 'utf8'));
  return typeof parsed === 'object' && parsed !== null ? configTemplate(parsed as TokenizerConfig) : null;
}

export class ChatTemplate {
  private readonly template: Template;
  private readonly specialTokens: Record<string, string>;

  constructor(source: string, config: TokenizerConfig) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new ChatTemplateError(`the chat template does not parse: ${err instanceof Error ? err.message : String(err)}`);
    }
    // Every *_token entry (strings or AddedToken objects) is visible to the template by name.
    this.specialTokens = {};
    for (const [key, value] of Object.entries(config)) {
      const text = key.endsWith('_token') ? specialTokenText(value) : null;
      if (text !== null) this.specialTokens[key] = text;
    }
  }

  /** The checkpoint's template, or null when it has none. */
  static load(modelDir: string, config: TokenizerConfig): ChatTemplate | null {
    const source = configTemplate(config) ?? fileTemplate(modelDir);
    return source === null ? null : new ChatTemplate(source, config);
  }

  render(messages: readonly TemplateMessage[], addGenerationPrompt = true): string {
    try {
      return this.template.render({
        ...this.specialTokens,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (err) {
      throw new ChatTemplateError(`the chat template rejected the messages: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** The checkpoint's template text, as ChatTemplate.load finds it, or null (the distillation manifest records it). */
export function chatTemplateSource(modelDir: string, config: TokenizerConfig): string | null {
  return configTemplate(config) ?? fileTemplate(modelDir);
}
