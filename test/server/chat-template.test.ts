// Chat templates from tokenizer_config.json (or chat_template.jinja), rendered with
// @huggingface/jinja: special tokens given as AddedToken objects, add_generation_prompt,
// named template lists, and template errors as ChatTemplateError.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChatTemplate, ChatTemplateError } from '../../server/tokenizer/chat-template.ts';

const TEMPLATE =
  "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt " +
  '%}<|assistant|>{% endif %}';

describe('ChatTemplate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-template-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('renders messages with special tokens given as strings or AddedToken objects', () => {
    const config = { chat_template: TEMPLATE, bos_token: { content: '<s>', lstrip: false }, eos_token: '</s>' };
    const template = ChatTemplate.load(dir, config);
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];
    expect(template?.render(messages)).toBe('<s><|system|>Be brief.</s><|user|>Hi</s><|assistant|>');
    expect(template?.render(messages, false)).toBe('<s><|system|>Be brief.</s><|user|>Hi</s>');
  });

  it('picks the default of a list of named templates', () => {
    const config = {
      chat_template: [
        { name: 'tool_use', template: 'TOOLS' },
        { name: 'default', template: 'DEFAULT {{ messages | length }}' },
      ],
    };
    expect(ChatTemplate.load(dir, config)?.render([{ role: 'user', content: 'x' }])).toBe('DEFAULT 1');
  });

  it('reads chat_template.jinja when the config has none, and is null without any', () => {
    expect(ChatTemplate.load(dir, {})).toBeNull();
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.content }}]{% endfor %}');
    expect(ChatTemplate.load(dir, {})?.render([{ role: 'user', content: 'a' }])).toBe('[a]');
  });

  it('turns raise_exception and syntax errors into ChatTemplateError', () => {
    const strict = new ChatTemplate(
      "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok",
      {},
    );
    expect(strict.render([{ role: 'user', content: 'x' }])).toBe('ok');
    expect(() => strict.render([{ role: 'assistant', content: 'x' }])).toThrow(ChatTemplateError);
    expect(() => strict.render([{ role: 'assistant', content: 'x' }])).toThrow(/first message must be from the user/);
    expect(() => new ChatTemplate('{% for %}', {})).toThrow(ChatTemplateError);
  });
});
