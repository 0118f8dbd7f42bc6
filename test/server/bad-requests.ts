// The bad requests of the error matrix (validation.test.ts): each must be a 400 in OpenAI's
// envelope naming `param`, its message matching `message` when given.
import { testTokens } from '../helpers/tiny-model.ts';

const CHAT = '/v1/chat/completions';
const COMPLETIONS = '/v1/completions';
const user = [{ role: 'user', content: 'Hi' }];

export interface BadRequestCase {
  name: string;
  url: string;
  body: unknown;
  param: string | null;
  message?: RegExp;
}

export const badRequests: BadRequestCase[] = [
  {
    name: 'temperature as a string',
    url: CHAT,
    body: { messages: user, temperature: '0.5' },
    param: 'temperature',
    message: /expected a number, but got a string/,
  },
  {
    name: 'temperature above 2',
    url: CHAT,
    body: { messages: user, temperature: 3 },
    param: 'temperature',
    message: /above the maximum of 2/,
  },
  { name: 'negative temperature', url: CHAT, body: { messages: user, temperature: -0.1 }, param: 'temperature' },
  { name: 'top_p above 1', url: CHAT, body: { messages: user, top_p: 1.5 }, param: 'top_p' },
  { name: 'fractional top_k', url: CHAT, body: { messages: user, top_k: 1.5 }, param: 'top_k', message: /integer/ },
  { name: 'min_p above 1', url: CHAT, body: { messages: user, min_p: 2 }, param: 'min_p' },
  { name: 'n of 0', url: CHAT, body: { messages: user, n: 0 }, param: 'n' },
  { name: 'max_tokens of 0', url: CHAT, body: { messages: user, max_tokens: 0 }, param: 'max_tokens' },
  {
    name: 'max_completion_tokens as a string',
    url: CHAT,
    body: { messages: user, max_completion_tokens: '5' },
    param: 'max_completion_tokens',
  },
  { name: 'presence_penalty out of range', url: CHAT, body: { messages: user, presence_penalty: 2.5 }, param: 'presence_penalty' },
  { name: 'frequency_penalty out of range', url: CHAT, body: { messages: user, frequency_penalty: -3 }, param: 'frequency_penalty' },
  { name: 'repetition_penalty of 0', url: CHAT, body: { messages: user, repetition_penalty: 0 }, param: 'repetition_penalty' },
  { name: 'fractional seed', url: CHAT, body: { messages: user, seed: 1.5 }, param: 'seed' },
  {
    name: 'a seed whose later choices pass 2^53',
    url: CHAT,
    body: { messages: user, seed: Number.MAX_SAFE_INTEGER, n: 2 },
    param: 'seed',
    message: /seed \+ 1/,
  },
  { name: 'top_logprobs above 20', url: CHAT, body: { messages: user, logprobs: true, top_logprobs: 21 }, param: 'top_logprobs' },
  { name: 'top_logprobs without logprobs', url: CHAT, body: { messages: user, top_logprobs: 2 }, param: 'top_logprobs' },
  { name: 'logprobs as a string', url: CHAT, body: { messages: user, logprobs: 'yes' }, param: 'logprobs' },
  { name: 'five stop strings', url: CHAT, body: { messages: user, stop: ['a', 'b', 'c', 'd', 'e'] }, param: 'stop', message: /up to 4/ },
  { name: 'an empty stop string', url: CHAT, body: { messages: user, stop: '' }, param: 'stop' },
  { name: 'stop as a number', url: CHAT, body: { messages: user, stop: 7 }, param: 'stop' },
  { name: 'logit_bias key not a token id', url: CHAT, body: { messages: user, logit_bias: { abc: 1 } }, param: 'logit_bias' },
  { name: 'logit_bias key outside the vocabulary', url: CHAT, body: { messages: user, logit_bias: { '99999': 1 } }, param: 'logit_bias' },
  { name: 'logit_bias value above 100', url: CHAT, body: { messages: user, logit_bias: { '5': 101 } }, param: 'logit_bias[5]' },
  { name: 'stop_token_ids outside the vocabulary', url: CHAT, body: { messages: user, stop_token_ids: [32000] }, param: 'stop_token_ids' },
  { name: 'stream as a string', url: CHAT, body: { messages: user, stream: 'yes' }, param: 'stream' },
  {
    name: 'include_usage as a string',
    url: CHAT,
    body: { messages: user, stream: true, stream_options: { include_usage: 1 } },
    param: 'stream_options.include_usage',
  },
  {
    name: 'missing messages',
    url: CHAT,
    body: { model: 'tiny-moe' },
    param: 'messages',
    message: /Missing required parameter: 'messages'/,
  },
  { name: 'empty messages', url: CHAT, body: { messages: [] }, param: 'messages', message: /at least 1/ },
  { name: 'messages as a string', url: CHAT, body: { messages: 'Hi' }, param: 'messages' },
  {
    name: 'an unknown role',
    url: CHAT,
    body: { messages: [{ role: 'bot', content: 'x' }] },
    param: 'messages[0].role',
    message: /"system"/,
  },
  { name: 'a message without content', url: CHAT, body: { messages: [{ role: 'user' }] }, param: 'messages[0].content' },
  {
    name: 'an image part',
    url: CHAT,
    body: { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
    param: 'messages[0].content',
  },
  { name: 'a body that is an array', url: CHAT, body: [1, 2], param: null, message: /JSON object/ },
  {
    name: 'an unknown response_format type',
    url: CHAT,
    body: { messages: user, response_format: { type: 'xml' } },
    param: 'response_format.type',
  },
  {
    name: 'a json_schema response_format without a schema object',
    url: CHAT,
    body: { messages: user, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: 3 } } },
    param: 'response_format.json_schema.schema',
  },
  {
    name: 'two output constraints',
    url: CHAT,
    body: { messages: user, response_format: { type: 'json_object' }, guided_regex: 'a+' },
    param: 'guided_regex',
  },
  {
    name: 'a tool name with a space',
    url: CHAT,
    body: { messages: user, tools: [{ type: 'function', function: { name: 'get weather' } }] },
    param: 'tools[0].function.name',
  },
  { name: 'functions', url: CHAT, body: { messages: user, functions: [{ name: 'f' }] }, param: 'functions' },
  { name: 'a required tool choice without tools', url: CHAT, body: { messages: user, tool_choice: 'required' }, param: 'tool_choice' },
  {
    name: 'a named tool choice not among the tools',
    url: CHAT,
    body: {
      messages: user,
      tools: [{ type: 'function', function: { name: 'f' } }],
      tool_choice: { type: 'function', function: { name: 'g' } },
    },
    param: 'tool_choice',
  },
  {
    name: 'a required tool call and a response_format',
    url: CHAT,
    body: {
      messages: user,
      tools: [{ type: 'function', function: { name: 'f' } }],
      tool_choice: 'required',
      response_format: { type: 'json_object' },
    },
    param: 'response_format',
  },
  {
    name: 'tool parameters that are not an object',
    url: CHAT,
    body: { messages: user, tools: [{ type: 'function', function: { name: 'f', parameters: 'any' } }] },
    param: 'tools[0].function.parameters',
  },
  {
    name: 'tool calls in a user message',
    url: CHAT,
    body: {
      messages: [{ role: 'user', content: 'x', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }],
    },
    param: 'messages[0].tool_calls',
  },
  { name: 'a named function call', url: CHAT, body: { messages: user, function_call: { name: 'f' } }, param: 'function_call' },
  {
    name: 'a chat prompt longer than the context',
    url: CHAT,
    body: { messages: [{ role: 'user', content: 'word '.repeat(600) }] },
    param: 'messages',
    message: /maximum context length is 512/,
  },
  { name: 'missing prompt', url: COMPLETIONS, body: { max_tokens: 3 }, param: 'prompt' },
  { name: 'an empty prompt array', url: COMPLETIONS, body: { prompt: [] }, param: 'prompt', message: /a string, an array of strings/ },
  { name: 'an empty token-id list', url: COMPLETIONS, body: { prompt: [[]] }, param: 'prompt' },
  { name: 'a fractional token id', url: COMPLETIONS, body: { prompt: [1.5] }, param: 'prompt' },
  { name: 'a negative token id', url: COMPLETIONS, body: { prompt: [-1] }, param: 'prompt' },
  {
    name: 'a token id outside the vocabulary',
    url: COMPLETIONS,
    body: { prompt: [1, 32000] },
    param: 'prompt',
    message: /outside the vocabulary/,
  },
  { name: 'too many choices', url: COMPLETIONS, body: { prompt: ['a', 'b', 'c'], n: 30 }, param: 'n' },
  {
    name: 'prompt_logprobs with a stream',
    url: COMPLETIONS,
    body: { prompt: 'a', prompt_logprobs: 1, stream: true },
    param: 'prompt_logprobs',
    message: /not available when `stream=True`/,
  },
  { name: 'prompt_logprobs above 20', url: CHAT, body: { messages: user, prompt_logprobs: 21 }, param: 'prompt_logprobs' },
  { name: 'max_tokens 0 without scoring', url: COMPLETIONS, body: { prompt: 'a', max_tokens: 0 }, param: 'max_tokens', message: /score/ },
  { name: 'completion logprobs above 20', url: COMPLETIONS, body: { prompt: 'a', logprobs: 21 }, param: 'logprobs' },
  {
    name: 'a completion prompt longer than the context',
    url: COMPLETIONS,
    body: { prompt: testTokens(600, 2) },
    param: 'prompt',
    message: /context length/,
  },
  { name: 'tokenize with neither prompt nor messages', url: '/tokenize', body: {}, param: 'prompt' },
  { name: 'detokenize outside the vocabulary', url: '/detokenize', body: { tokens: [5, 40000] }, param: 'tokens[1]' },
];
