// A validated chat or completions body -> what to generate and how to shape the answer.
// Everything that can be refused is refused here, before any engine work or streaming.
import { randomBytes } from 'node:crypto';
import type { GenerationRequest } from '../engine/api.ts';
import type { ChatCompletionRequest } from '../schemas/chat.ts';
import type { CompletionRequest } from '../schemas/completions.ts';
import type { ServedModel } from '../served-model.ts';
import { ChatFormat } from './chat-format.ts';
import { CompletionFormat } from './completion-format.ts';
import { invalidRequest } from './errors.ts';
import type { EndpointFormat, ResponseMeta } from './format.ts';
import { checkModel, checkScoring, choiceRequests, refuseUnsupported } from './params.ts';
import { chatPromptIds, completionPromptIds, echoPrompts } from './prompts.ts';

export interface PreparedRequest {
  requests: GenerationRequest[];
  n: number;
  format: EndpointFormat;
  stream: boolean;
  includeUsage: boolean;
}

function responseMeta(prefix: string, model: ServedModel): ResponseMeta {
  return { id: `${prefix}-${randomBytes(12).toString('hex')}`, created: Math.floor(Date.now() / 1000), model: model.id };
}

export function prepareChat(body: ChatCompletionRequest, model: ServedModel): PreparedRequest {
  checkModel(body.model, model);
  refuseUnsupported(body);
  if (body.top_logprobs !== undefined && body.logprobs !== true) {
    throw invalidRequest("'top_logprobs' requires 'logprobs' to be true.", 'top_logprobs');
  }
  const promptLogprobs = body.prompt_logprobs ?? null;
  checkScoring(body, promptLogprobs !== null);
  const prompt = chatPromptIds(model, body.messages, body.add_generation_prompt ?? true);
  const topLogprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : null;
  const stream = body.stream === true;
  const includeUsage = stream && body.stream_options?.include_usage === true;
  return {
    requests: choiceRequests(body, model, [prompt], topLogprobs, promptLogprobs),
    n: body.n ?? 1,
    format: new ChatFormat({
      meta: responseMeta('chatcmpl', model),
      texts: model.tokenTexts,
      withLogprobs: topLogprobs !== null,
      includeUsage,
      withRoutedExperts: body.routed_experts === true,
      promptLogprobs: stream ? null : promptLogprobs,
    }),
    stream,
    includeUsage,
  };
}

export function prepareCompletion(body: CompletionRequest, model: ServedModel): PreparedRequest {
  checkModel(body.model, model);
  refuseUnsupported(body);
  const echo = body.echo === true;
  const topLogprobs = body.logprobs ?? null;
  const promptLogprobs = body.prompt_logprobs ?? null;
  // Echoed logprobs and vLLM's prompt_logprobs come from one scoring of the prompt.
  const promptTopK = Math.max(echo && topLogprobs !== null ? topLogprobs : -1, promptLogprobs ?? -1);
  checkScoring(body, echo || promptLogprobs !== null);
  const prompts = completionPromptIds(model, body.prompt);
  const stream = body.stream === true;
  const includeUsage = stream && body.stream_options?.include_usage === true;
  return {
    requests: choiceRequests(body, model, prompts, topLogprobs, promptTopK < 0 ? null : promptTopK),
    n: body.n ?? 1,
    format: new CompletionFormat(
      {
        meta: responseMeta('cmpl', model),
        texts: model.tokenTexts,
        withLogprobs: topLogprobs !== null,
        includeUsage,
        withRoutedExperts: body.routed_experts === true,
        promptLogprobs: stream ? null : promptLogprobs,
      },
      echo ? { prompts: echoPrompts(model, body.prompt, prompts), n: body.n ?? 1, numTop: topLogprobs ?? 0 } : null,
    ),
    stream,
    includeUsage,
  };
}
