// The distillation export on disk: safetensors shards of concatenated conversations plus
// manifest.json. A shard is written whole (temporary name, fsync, rename) once its
// conversations reach --shard-mib, then listed in the manifest (rewritten the same way), so a
// crash loses at most the conversations of the shard being filled, and a rerun redoes them.
// Which conversations are done is read back from the listed shards' headers (metadata.ids)
// and from errors.jsonl.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { isPlainObject } from '../../models/checkpoint/safetensors-header.ts';
import { type ArrayTensor, readArraysMetadata, writeArraysFile } from './safetensors-arrays.ts';
import type { RouterShape, ScoredConversation } from './score-conversation.ts';

export const MANIFEST_FILE = 'manifest.json';
export const ERRORS_FILE = 'errors.jsonl';
export const FORMAT = 'moe-server-distill';
export const FORMAT_VERSION = 1;

export interface ShardEntry {
  file: string;
  sequences: number;
  input_tokens: number;
  response_tokens: number;
  bytes: number;
}

/** What an export is of: a rerun into the same directory must match it. */
export interface ExportSettings {
  model: Record<string, unknown>;
  tokenizer: Record<string, unknown>;
  chat_template: Record<string, unknown>;
  top_k: number;
  temperature: number;
  router: RouterShape | null;
  generate: Record<string, unknown> | null;
}

export interface Manifest extends ExportSettings {
  format: typeof FORMAT;
  version: number;
  response_tokens: string;
  tensors: Record<string, string>;
  counts: { sequences: number; input_tokens: number; response_tokens: number; errors: number };
  shards: ShardEntry[];
}

/** What each tensor of a shard holds (S conversations, T input tokens, N response tokens, K = top_k). */
export const TENSOR_DOCS: Record<string, string> = {
  input_ids: "I32 [T]: every conversation's tokens (the rendered chat template), concatenated",
  sequence_offsets: 'I64 [S+1]: conversation s is input_ids[sequence_offsets[s]:sequence_offsets[s+1]]',
  response_offsets: 'I64 [S+1]: the response rows of conversation s are rows response_offsets[s]:response_offsets[s+1]',
  response_positions: "I32 [N]: each response row's position within its conversation (>= 1)",
  token_ids: 'I32 [N]: the response token at that position',
  token_logprobs: 'F32 [N]: its teacher log-probability given the tokens before it',
  top_ids: "I32 [N, K]: the teacher's K most likely tokens at that position, best first (-1 pads a vocabulary smaller than K)",
  top_logprobs: 'F32 [N, K]: their log-probabilities',
  tail_logprobs: 'F32 [N]: log of the probability outside the top K, log(1 - sum(exp(top_logprobs))); -inf when none is left',
  router_expert_ids: 'I32 [T, L, R] (with --router): per input token and MoE layer, the R chosen experts, best first',
  router_weights: 'F32 [T, L, R] (with --router): their gate weights, as the MoE layer combines the experts',
};

export class DistillShards {
  private pending: ScoredConversation[] = [];
  private pendingBytes = 0;

  private constructor(
    private readonly dir: string,
    readonly manifest: Manifest,
    private readonly maxShardBytes: number,
  ) {}

  /** Opens `dir` for writing: a new export, or the one there when its settings match. */
  static open(dir: string, settings: ExportSettings, responseTokens: string, maxShardBytes: number): DistillShards {
    fs.mkdirSync(dir, { recursive: true });
    const file = join(dir, MANIFEST_FILE);
    if (fs.existsSync(file)) {
      const existing = JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
      const mismatch = settingsMismatch(existing, settings);
      if (mismatch !== null) throw new Error(`${dir} holds an export with other settings (${mismatch}); use another --out`);
      return new DistillShards(dir, existing, maxShardBytes);
    }
    const manifest: Manifest = {
      format: FORMAT,
      version: FORMAT_VERSION,
      ...settings,
      response_tokens: responseTokens,
      tensors: Object.fromEntries(Object.entries(TENSOR_DOCS).filter(([name]) => settings.router !== null || !name.startsWith('router_'))),
      counts: { sequences: 0, input_tokens: 0, response_tokens: 0, errors: 0 },
      shards: [],
    };
    const shards = new DistillShards(dir, manifest, maxShardBytes);
    shards.writeManifest();
    return shards;
  }

  /** Ids of the conversations in the listed shards. */
  doneIds(): Set<string> {
    const ids = new Set<string>();
    for (const shard of this.manifest.shards) {
      const raw = readArraysMetadata(join(this.dir, shard.file)).ids;
      const list: unknown = JSON.parse(raw ?? '[]');
      if (Array.isArray(list)) for (const id of list) if (typeof id === 'string') ids.add(id);
    }
    return ids;
  }

  add(conversation: ScoredConversation): void {
    this.pending.push(conversation);
    this.pendingBytes += recordBytes(conversation);
    if (this.pendingBytes >= this.maxShardBytes) this.flush();
  }

  countError(): void {
    this.manifest.counts.errors++;
    this.writeManifest();
  }

  /** Writes the conversations held so far as one shard (nothing when none). */
  flush(): void {
    if (this.pending.length === 0) return;
    const name = `shard-${String(this.manifest.shards.length).padStart(5, '0')}.safetensors`;
    const conversations = this.pending;
    const tensors = shardTensors(conversations, this.manifest.top_k, this.manifest.router);
    const metadata = { format: FORMAT, version: String(FORMAT_VERSION), ids: JSON.stringify(conversations.map((c) => c.id)) };
    const bytes = writeArraysFile(join(this.dir, name), tensors, metadata);
    const entry: ShardEntry = {
      file: name,
      sequences: conversations.length,
      input_tokens: conversations.reduce((n, c) => n + c.inputIds.length, 0),
      response_tokens: conversations.reduce((n, c) => n + c.positions.length, 0),
      bytes,
    };
    this.manifest.shards.push(entry);
    this.manifest.counts.sequences += entry.sequences;
    this.manifest.counts.input_tokens += entry.input_tokens;
    this.manifest.counts.response_tokens += entry.response_tokens;
    this.writeManifest();
    this.pending = [];
    this.pendingBytes = 0;
  }

  private writeManifest(): void {
    const file = join(this.dir, MANIFEST_FILE);
    fs.writeFileSync(`${file}.partial`, `${JSON.stringify(this.manifest, null, 2)}\n`);
    fs.renameSync(`${file}.partial`, file);
  }
}

function recordBytes(c: ScoredConversation): number {
  const routed = c.router === null ? 0 : c.router.expertIds.byteLength + c.router.weights.byteLength;
  return (
    c.inputIds.byteLength +
    16 +
    c.positions.byteLength * 3 +
    c.topIds.byteLength +
    c.topLogprobs.byteLength +
    c.tailLogprobs.byteLength +
    routed
  );
}

function concat<T extends Int32Array | Float32Array>(parts: T[], make: (length: number) => T): T {
  const out = make(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function offsets(lengths: number[]): BigInt64Array {
  const out = new BigInt64Array(lengths.length + 1);
  for (let i = 0; i < lengths.length; i++) out[i + 1] = out[i] + BigInt(lengths[i]);
  return out;
}

function shardTensors(conversations: ScoredConversation[], k: number, router: RouterShape | null): ArrayTensor[] {
  const i32 = (n: number): Int32Array => new Int32Array(n);
  const f32 = (n: number): Float32Array => new Float32Array(n);
  const numTokens = conversations.reduce((n, c) => n + c.inputIds.length, 0);
  const numRows = conversations.reduce((n, c) => n + c.positions.length, 0);
  const tokenIds = concat(
    conversations.map((c) => Int32Array.from(c.positions, (p) => c.inputIds[p])),
    i32,
  );
  const tensors: ArrayTensor[] = [
    {
      name: 'input_ids',
      shape: [numTokens],
      data: concat(
        conversations.map((c) => c.inputIds),
        i32,
      ),
    },
    { name: 'sequence_offsets', shape: [conversations.length + 1], data: offsets(conversations.map((c) => c.inputIds.length)) },
    { name: 'response_offsets', shape: [conversations.length + 1], data: offsets(conversations.map((c) => c.positions.length)) },
    {
      name: 'response_positions',
      shape: [numRows],
      data: concat(
        conversations.map((c) => c.positions),
        i32,
      ),
    },
    { name: 'token_ids', shape: [numRows], data: tokenIds },
    {
      name: 'token_logprobs',
      shape: [numRows],
      data: concat(
        conversations.map((c) => c.tokenLogprobs),
        f32,
      ),
    },
    {
      name: 'top_ids',
      shape: [numRows, k],
      data: concat(
        conversations.map((c) => c.topIds),
        i32,
      ),
    },
    {
      name: 'top_logprobs',
      shape: [numRows, k],
      data: concat(
        conversations.map((c) => c.topLogprobs),
        f32,
      ),
    },
    {
      name: 'tail_logprobs',
      shape: [numRows],
      data: concat(
        conversations.map((c) => c.tailLogprobs),
        f32,
      ),
    },
  ];
  if (router !== null) {
    const shape = [numTokens, router.numMoeLayers, router.topK];
    tensors.push({
      name: 'router_expert_ids',
      shape,
      data: concat(
        conversations.map((c) => c.router!.expertIds),
        i32,
      ),
    });
    tensors.push({
      name: 'router_weights',
      shape,
      data: concat(
        conversations.map((c) => c.router!.weights),
        f32,
      ),
    });
  }
  return tensors;
}

function settingsMismatch(existing: Manifest, settings: ExportSettings): string | null {
  for (const key of Object.keys(settings) as Array<keyof ExportSettings>) {
    if (JSON.stringify(existing[key]) !== JSON.stringify(settings[key])) return key;
  }
  return null;
}

/** Ids of conversations errors.jsonl reports (done: a rerun does not retry them). */
export function errorIds(value: unknown, into: Set<string>): void {
  if (isPlainObject(value) && typeof value.id === 'string') into.add(value.id);
}
