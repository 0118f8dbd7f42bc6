// Chat templates tests put into a tiny checkpoint in place of the one it ships with.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEEPSEEK_CHAT_TEMPLATE } from '../../models/chat-templates.ts';

/**
 * The shipped template with a DeepSeek-R1-style opening: the reply starts inside <think>,
 * unless chat_template_kwargs say enable_thinking: false (then an empty reasoning block is
 * closed in the prompt, as Qwen3's template does).
 */
export const THINKING_CHAT_TEMPLATE = DEEPSEEK_CHAT_TEMPLATE.replace(
  "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
  "{% if add_generation_prompt %}{{ 'Assistant:' }}{% if enable_thinking is defined and not enable_thinking %}" +
    "{{ ' <think>\\n\\n</think>\\n\\n' }}{% else %}{{ ' <think>\\n' }}{% endif %}{% endif %}",
);

/** Rewrites the checkpoint's tokenizer_config.json with another chat template. */
export function useChatTemplate(modelDir: string, template: string): void {
  const file = join(modelDir, 'tokenizer_config.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, `${JSON.stringify({ ...config, chat_template: template }, null, 2)}\n`);
}
