// POST /tokenize and POST /detokenize, as vLLM has them: what the server would feed the model
// for a prompt or a conversation, and the text of token ids.
import type { FastifyInstance } from 'fastify';
import { firstOutsideVocabulary, outsideVocabularyMessage } from '../../models/vocabulary.ts';
import { invalidRequest } from '../openai/errors.ts';
import { checkModel } from '../openai/params.ts';
import { encodeText, renderChat } from '../openai/prompts.ts';
import { DetokenizeRequest, TokenizeRequest } from '../schemas/tokenize.ts';
import type { RenderOptions } from '../tokenizer/chat-template.ts';
import type { ServerContext } from './context.ts';

/** As chat renders the conversation (tools are rendered whenever they are given). */
function chatRenderOptions(body: TokenizeRequest): RenderOptions {
  return {
    addGenerationPrompt: body.add_generation_prompt ?? true,
    tools: body.tools ?? [],
    chatTemplateKwargs: body.chat_template_kwargs ?? {},
  };
}

export function tokenizeRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: TokenizeRequest }>('/tokenize', { schema: { body: TokenizeRequest } }, async (request) => {
    const model = ctx.slot.get();
    const body = request.body;
    checkModel(body.model, model);
    if ((body.prompt === undefined) === (body.messages === undefined)) {
      throw invalidRequest("Give exactly one of 'prompt' and 'messages'.", body.prompt === undefined ? 'prompt' : 'messages');
    }
    const tokens =
      body.messages !== undefined
        ? encodeText(model, renderChat(model, body.messages, chatRenderOptions(body)), 'messages', false)
        : encodeText(model, body.prompt ?? '', 'prompt', body.add_special_tokens ?? true);
    const tokenStrs = body.return_token_strs === true ? { token_strs: tokens.map((id) => model.tokenizer.idToToken(id) ?? '') } : {};
    return { count: tokens.length, max_model_len: model.maxModelLen, tokens, ...tokenStrs };
  });

  app.post<{ Body: DetokenizeRequest }>('/detokenize', { schema: { body: DetokenizeRequest } }, async (request) => {
    const model = ctx.slot.get();
    checkModel(request.body.model, model);
    const tokens = request.body.tokens;
    const bad = firstOutsideVocabulary(tokens, model.vocabSize);
    if (bad >= 0)
      throw invalidRequest(`Invalid 'tokens[${bad}]': ${outsideVocabularyMessage(tokens[bad], model.vocabSize)}.`, `tokens[${bad}]`);
    return { prompt: model.tokenizer.decode(tokens) };
  });
}
