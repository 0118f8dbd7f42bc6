// Chat templates we ship with synthetic checkpoints. Written for this project in the style of
// the DeepSeek chat models: "User: ...\n\nAssistant: ...<eos>", system text first.

/** The instruction a tools block starts with: the Hermes/Qwen call markup the model should write. */
const TOOLS_HEADER =
  'You may call functions to help with the request. To call one, write <tool_call>\\n{"name": <function name>, ' +
  '"arguments": <the arguments as a JSON object>}\\n</tool_call>. The functions:\\n';

/**
 * DeepSeek-style template: bos, then per message "User: {content}\n\n",
 * "Assistant: {content}{eos}" or "{system content}\n\n"; "Assistant:" opens the reply.
 * With tools it lists them first (one JSON object a line) and says how to call one in
 * Hermes/Qwen markup (<tool_call>{"name": ..., "arguments": ...}</tool_call>), writes an
 * assistant's calls in that markup and tool results as "Tool: <tool_response>...". Without
 * tools the text is what it always was.
 */
export const DEEPSEEK_CHAT_TEMPLATE = [
  '{{ bos_token }}',
  `{% if tools %}{{ '${TOOLS_HEADER}' }}{% for tool in tools %}{{ tool | tojson }}{{ '\\n' }}{% endfor %}{{ '\\n' }}{% endif %}`,
  '{% for message in messages %}',
  "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}",
  "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] }}",
  "{% for call in message['tool_calls'] or [] %}",
  "{{ '<tool_call>\\n{\"name\": \"' + call['function']['name'] + '\", \"arguments\": ' + call['function']['arguments'] + '}\\n</tool_call>' }}",
  '{% endfor %}{{ eos_token }}',
  "{% elif message['role'] == 'tool' %}{{ 'Tool: <tool_response>\\n' + message['content'] + '\\n</tool_response>\\n\\n' }}",
  "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}",
  '{% endif %}',
  '{% endfor %}',
  "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
].join('');
