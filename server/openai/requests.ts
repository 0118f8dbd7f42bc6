// A validated chat or completions body -> what to generate and how to shape the answer.
// Everything that can be refused is refused here, before any engine work or streaming.
import { randomBytes } from 'node:crypto';
import type { GenerationRequest, OutputConstraint } from '../engine/api.ts';
import type { ChatCompletionRequest } from '../schemas/chat.ts';
import type { CompletionRequest } from '../schemas/completions.ts';
import type { ServedModel } from '../served-model.ts';
import { ChatFormat } from './chat-format.ts';
import { CompletionFormat } from './completion-format.ts';
import { invalidRequest } from './errors.ts';
import type { EndpointFormat, ResponseMeta } from './format.ts';
import { checkModel, checkScoring, choiceRequests, refuseUnsupported } from './params.ts';
import { completionPromptIds, echoPrompts } from './prompts.ts';
import { planChat } from './chat-plan.ts';
import { completionGrammar } from './output-grammar.ts';

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
  const chat = planChat(body, model);
  const topLogprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : null;
  const stream = body.stream === true;
  const includeUsage = stream && body.stream_options?.include_usage === true;
  return {
    requests: withGrammar(choiceRequests(body, model, [chat.prompt], topLogprobs, promptLogprobs), chat.grammar),
    n: body.n ?? 1,
    format: new ChatFormat(
      {
        meta: responseMeta('chatcmpl', model),
        texts: model.tokenTexts,
        withLogprobs: topLogprobs !== null,
        includeUsage,
        withRoutedExperts: body.routed_experts === true,
        promptLogprobs: stream ? null : promptLogprobs,
      },
      chat.output,
    ),
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
    requests: withGrammar(choiceRequests(body, model, prompts, topLogprobs, promptTopK < 0 ? null : promptTopK), completionGrammar(body)),
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

/** Every choice decodes under the same constraint (each with its own matcher in the engine). */
function withGrammar(requests: GenerationRequest[], grammar: OutputConstraint | null): GenerationRequest[] {
  return grammar === null ? requests : requests.map((request) => ({ ...request, grammar }));
}
