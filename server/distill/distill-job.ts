// `moe-server distill`: conversations scored teacher-forced by the served model (optionally
// after the model generates the last answer), written as safetensors shards for a student's
// trainer. Read line by line with at most `maxInFlight` conversations in the engine, resumed
// like a batch job: conversations in the listed shards or in errors.jsonl are skipped.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isMoe } from '../../models/spec.ts';
import { chatTemplateSource } from '../tokenizer/chat-template.ts';
import { ApiError } from '../openai/errors.ts';
import { Generation } from '../openai/generation.ts';
import { prepareChat } from '../openai/requests.ts';
import { ChatCompletionRequest, type ChatMessage } from '../schemas/chat.ts';
import { parseWith } from '../schemas/validation.ts';
import type { ServedModel } from '../served-model.ts';
import { countLines, LineAppender, resumeLines } from '../jobs/jsonl-file.ts';
import { LineJob, type LineJobOptions } from '../jobs/line-job.ts';
import { conversationTokens, parseConversationLine } from './conversations.ts';
import { DistillShards, ERRORS_FILE, errorIds, type ExportSettings } from './distill-shards.ts';
import { type RouterShape, scoreConversation, type ScoreOptions } from './score-conversation.ts';

export const RESPONSE_TOKENS_RULE =
  'the tokens of every assistant turn: between the chat template rendered up to the turn with the generation prompt opened and ' +
  'rendered through the turn (so the end-of-turn tokens the template adds are included)';

export interface DistillOptions extends LineJobOptions {
  outDir: string;
  /** The checkpoint directory: its tokenizer and template are recorded in the manifest. */
  modelDir: string;
  topK: number;
  temperature: number;
  router: boolean;
  /** Chat completion fields every --generate request starts from (a line's own fields win); null: score as given. */
  generate: Record<string, unknown> | null;
  maxShardBytes: number;
  /** Written into the manifest: how the model was compiled (weights precision...). */
  modelInfo?: Record<string, unknown>;
}

export interface DistillSummary {
  numLines: number;
  numSkipped: number;
  numScored: number;
  numErrors: number;
  numCancelled: number;
  inputTokens: number;
  responseTokens: number;
  generatedTokens: number;
  seconds: number;
  stoppedBy: string | null;
}

function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

function routerShape(model: ServedModel): RouterShape | null {
  const moe = model.engine.info.spec.mlp.filter(isMoe);
  return moe.length === 0 ? null : { numMoeLayers: moe.length, topK: moe[0].numExpertsPerToken };
}

/** What the export is of, for the manifest; a rerun must match it to resume. */
export function exportSettings(model: ServedModel, options: DistillOptions): ExportSettings {
  const { spec } = model.engine.info;
  const template = chatTemplateSource(options.modelDir, model.tokenizer.config);
  const tokenizerFile = join(options.modelDir, 'tokenizer.json');
  return {
    model: {
      id: model.id,
      dir: resolve(options.modelDir),
      model_type: spec.modelType,
      vocab_size: spec.vocabSize,
      num_layers: spec.numLayers,
      moe_layers: spec.mlp.flatMap((mlp, layer) => (isMoe(mlp) ? [layer] : [])),
      ...options.modelInfo,
    },
    tokenizer: { file: resolve(tokenizerFile), sha256: sha256(readFileSync(tokenizerFile)) },
    chat_template: { sha256: template === null ? null : sha256(template), text: template },
    top_k: options.topK,
    temperature: options.temperature,
    router: options.router ? routerShape(model) : null,
    generate: options.generate,
  };
}

export async function runDistillJob(model: ServedModel, options: DistillOptions): Promise<DistillSummary> {
  const started = performance.now();
  const settings = exportSettings(model, options);
  const shards = DistillShards.open(options.outDir, settings, RESPONSE_TOKENS_RULE, options.maxShardBytes);
  const done = shards.doneIds();
  await resumeLines(join(options.outDir, ERRORS_FILE), (value) => errorIds(value, done));
  const total = await countLines(options.input);
  const job = new DistillJob(model, options, shards, done, total, settings.router);
  try {
    await job.run();
    shards.flush();
  } finally {
    job.close();
  }
  options.progress?.finish();
  return { ...job.counts, numLines: total, seconds: (performance.now() - started) / 1000, stoppedBy: job.stoppedBy };
}

class DistillJob extends LineJob {
  readonly counts = { numSkipped: 0, numScored: 0, numErrors: 0, numCancelled: 0, inputTokens: 0, responseTokens: 0, generatedTokens: 0 };
  private readonly errors: LineAppender;
  private readonly seen = new Set<string>();
  private readonly scoring: ScoreOptions;

  constructor(
    private readonly model: ServedModel,
    private readonly options: DistillOptions,
    private readonly shards: DistillShards,
    private readonly done: Set<string>,
    total: number,
    router: RouterShape | null,
  ) {
    super(options, total);
    this.errors = new LineAppender(join(options.outDir, ERRORS_FILE));
    this.scoring = { topK: options.topK, temperature: options.temperature, router };
  }

  close(): void {
    this.errors.close();
  }

  protected rate(seconds: number): string {
    return `${(seconds > 0 ? this.counts.inputTokens / seconds : 0).toFixed(1)} scored tok/s`;
  }

  protected handle(lineNumber: number, text: string): void {
    if (text.trim() === '') return this.finishLine();
    let conversation: ReturnType<typeof parseConversationLine>;
    try {
      conversation = parseConversationLine(text, lineNumber);
    } catch (err) {
      if (this.done.has(`line-${lineNumber}`)) return this.skip(); // reported by an earlier run
      return this.fail(`line-${lineNumber}`, lineNumber, err);
    }
    if (this.done.has(conversation.id)) return this.skip();
    if (this.seen.has(conversation.id))
      return this.fail(`line-${lineNumber}`, lineNumber, new Error(`id "${conversation.id}" is used by an earlier line`));
    this.seen.add(conversation.id);
    this.track(this.process(lineNumber, conversation));
  }

  private async process(lineNumber: number, conversation: ReturnType<typeof parseConversationLine>): Promise<void> {
    try {
      const messages = this.options.generate === null ? conversation.messages : await this.generate(conversation);
      if (messages === null) return void this.counts.numCancelled++;
      const { ids, spans } = conversationTokens(this.model, messages);
      const scored = await scoreConversation(this.model.engine, conversation.id, ids, spans, this.scoring, this.stop.signal);
      if (scored === null) return void this.counts.numCancelled++;
      this.shards.add(scored);
      this.counts.numScored++;
      this.counts.inputTokens += scored.inputIds.length;
      this.counts.responseTokens += scored.positions.length;
      this.finishLine();
    } catch (err) {
      if (this.stop.signal.aborted) return void this.counts.numCancelled++;
      // The engine stopping is no fault of this conversation: a rerun does it.
      if (!this.model.engine.isRunning) {
        this.counts.numCancelled++;
        return this.halt('the engine stopped');
      }
      this.fail(conversation.id, lineNumber, err);
    }
  }

  /** The conversation with the teacher's answer appended (chat completion shaping, as the API); null when stopped. */
  private async generate(conversation: ReturnType<typeof parseConversationLine>): Promise<ChatMessage[] | null> {
    const body = parseWith(ChatCompletionRequest, {
      ...this.options.generate,
      ...conversation.fields,
      messages: conversation.messages,
      n: 1,
    });
    const prepared = prepareChat(body, this.model);
    if (prepared.stream) throw new Error("'stream' has no meaning here");
    const { requests } = prepared;
    const generation = await Generation.start({
      engine: this.model.engine,
      gate: this.gate,
      requests,
      n: 1,
      signal: this.stop.signal,
      log: this.log,
    });
    for await (const update of generation.updates()) void update;
    if (generation.cancelled || this.stop.signal.aborted) return null;
    this.counts.generatedTokens += generation.usage.completion_tokens;
    return [...conversation.messages, { role: 'assistant', content: generation.choices[0].text }];
  }

  private skip(): void {
    this.counts.numSkipped++;
    this.finishLine();
  }

  private fail(id: string, lineNumber: number, err: unknown): void {
    const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
    this.errors.append({ id, line: lineNumber, message });
    this.shards.countError();
    this.counts.numErrors++;
    this.finishLine();
  }
}
