// Chat templates from a checkpoint, rendered with @huggingface/jinja as transformers'
// apply_chat_template does: the template sees the messages, add_generation_prompt and the
// special token strings. The rendered text already holds BOS where the model wants it, so it
// is tokenised without adding special tokens again.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { specialTokenText, type TokenizerConfig } from './tokenizer.ts';

/** An assistant's earlier call, as OpenAI sends it back (arguments: a JSON string). */
export interface TemplateToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface TemplateMessage {
  role: string;
  /** null: an assistant turn that only called tools. */
  content: string | null;
  tool_calls?: readonly TemplateToolCall[];
  /** role "tool": the call this message answers. */
  tool_call_id?: string;
  name?: string;
  /** An earlier assistant turn's reasoning (templates that render it back, e.g. Qwen3). */
  reasoning_content?: string;
}

/** A tool as OpenAI's `tools[]` gives it; templates render these (Qwen3 as JSON lines). */
export interface TemplateTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: unknown; strict?: boolean };
}

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  tools?: readonly TemplateTool[];
  /** Extra template variables (OpenAI-compatible servers' chat_template_kwargs), e.g. enable_thinking. */
  chatTemplateKwargs?: Readonly<Record<string, unknown>>;
}

/** Variables the server sets; chat_template_kwargs cannot replace them. */
const RESERVED_VARIABLES = new Set(['messages', 'tools', 'add_generation_prompt']);

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
  /**
   * How this template wants a call's arguments: most concatenate or print the JSON string
   * (DeepSeek-V3) or accept either (Qwen3 checks `is string`); some only pipe them through
   * tojson and want the object (Llama 3.1 style).
   */
  private readonly argumentsAsObject: boolean;
  /**
   * Whether "no text" is null here: DeepSeek-V3's template renders tool calls only when
   * content `is none`, while Qwen3's calls string methods on content and needs "".
   */
  private readonly emptyContentIsNone: boolean;

  constructor(
    /** The template's text (parsers are chosen from the markup it writes). */
    readonly source: string,
    config: TokenizerConfig,
  ) {
    this.argumentsAsObject = /arguments\s*\|\s*(tojson|items)/.test(source) && !/arguments\s+is\s+string/.test(source);
    this.emptyContentIsNone = /(?<![\w])content['"]?\]?\s+is\s+(not\s+)?none/.test(source);
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

  /** Renders the conversation; the second argument is add_generation_prompt or the options. */
  render(messages: readonly TemplateMessage[], options: boolean | RenderOptions = true): string {
    const {
      addGenerationPrompt = true,
      tools,
      chatTemplateKwargs = {},
    } = typeof options === 'boolean' ? { addGenerationPrompt: options } : options;
    const kwargs = Object.fromEntries(Object.entries(chatTemplateKwargs).filter(([key]) => !RESERVED_VARIABLES.has(key)));
    const context: Record<string, unknown> = {
      ...kwargs,
      ...this.specialTokens,
      messages: messages.map((m) => this.templateMessage(m)),
      add_generation_prompt: addGenerationPrompt,
    };
    // Templates test `if tools`: absent rather than an empty list.
    if (tools !== undefined && tools.length > 0) context.tools = tools;
    try {
      return this.template.render(context);
    } catch (err) {
      throw new ChatTemplateError(`the chat template rejected the messages: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** The message as this template expects it; fields the client did not send stay absent. */
  private templateMessage(m: TemplateMessage): Record<string, unknown> {
    const calls = m.tool_calls !== undefined && m.tool_calls.length > 0 ? m.tool_calls : undefined;
    const noText = m.content === null || (m.content === '' && calls !== undefined);
    const message: Record<string, unknown> = { role: m.role, content: noText ? (this.emptyContentIsNone ? null : '') : m.content };
    if (calls !== undefined) {
      message.tool_calls = calls.map((c) => ({
        id: c.id,
        type: c.type,
        function: {
          name: c.function.name,
          arguments: this.argumentsAsObject ? parsedArguments(c.function.arguments) : c.function.arguments,
        },
      }));
    }
    if (m.tool_call_id !== undefined) message.tool_call_id = m.tool_call_id;
    if (m.name !== undefined) message.name = m.name;
    if (m.reasoning_content !== undefined) message.reasoning_content = m.reasoning_content;
    return message;
  }
}

/** A JSON string as the object it holds, or the string itself when it is not valid JSON. */
function parsedArguments(args: string): unknown {
  try {
    return JSON.parse(args) as unknown;
  } catch {
    return args;
  }
}

/** The checkpoint's template text, as ChatTemplate.load finds it, or null (the distillation manifest records it). */
export function chatTemplateSource(modelDir: string, config: TokenizerConfig): string | null {
  return configTemplate(config) ?? fileTemplate(modelDir);
}
