// Chat templates we ship with synthetic checkpoints. Written for this project in the style of
// the DeepSeek chat models: "User: ...\n\nAssistant: ...<eos>", system text first.

/**
 * DeepSeek-style template: bos, then per message "User: {content}\n\n",
 * "Assistant: {content}{eos}" or "{system content}\n\n"; "Assistant:" opens the reply.
 */
export const DEEPSEEK_CHAT_TEMPLATE = [
  '{{ bos_token }}',
  '{% for message in messages %}',
  "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}",
  "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}",
  "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}",
  '{% endif %}',
  '{% endfor %}',
  "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
].join('');
