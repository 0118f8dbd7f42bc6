// tokenizer.ggml.* metadata from a checkpoint's tokenizer.json and tokenizer_config.json, as
// llama.cpp needs it to load the vocabulary. Two kinds: SentencePiece-style BPE with byte
// fallback (the Llama-2 tokenizer of the bench and demo checkpoints) becomes llama.cpp's
// "llama" vocabulary (tokens, scores, token types); byte-level BPE (GPT-2 style: OLMoE,
// DeepSeekMoE's own) becomes "gpt2" (tokens, token types, merges). The benchmark sends token
// ids on both sides, so what matters for timing is that the vocabulary loads with the right
// size and special ids; detokenised text is not compared.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelSpec } from '../../models/spec.ts';
import type { GgufMetadata } from './gguf-format.ts';

/** llama_token_type */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** llama.cpp's pre-tokenizer names for the byte-level vocabularies of the families written here. */
const GPT2_PRE: Readonly<Record<string, string>> = { olmoe: 'olmo', deepseek: 'deepseek-llm' };

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

interface TokenizerFiles {
  vocab: Map<string, number>;
  merges: string[];
  byteFallback: boolean;
  added: AddedToken[];
  config: Record<string, unknown>;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readTokenizerFiles(modelDir: string): TokenizerFiles {
  const file = join(modelDir, 'tokenizer.json');
  const json: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (!isRecord(json) || !isRecord(json.model) || json.model.type !== 'BPE' || !isRecord(json.model.vocab)) {
    throw new Error(`${file}: only BPE tokenizers (model.type "BPE" with a vocab) are written to GGUF`);
  }
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(json.model.vocab)) if (typeof id === 'number') vocab.set(token, id);
  const rawMerges = Array.isArray(json.model.merges) ? json.model.merges : [];
  const merges = rawMerges.map((m: unknown) => (Array.isArray(m) ? m.join(' ') : String(m)));
  const added = (Array.isArray(json.added_tokens) ? json.added_tokens : [])
    .filter(isRecord)
    .map((t): AddedToken => ({ id: Number(t.id), content: String(t.content), special: t.special === true }));
  const configFile = join(modelDir, 'tokenizer_config.json');
  const config: unknown = existsSync(configFile) ? JSON.parse(readFileSync(configFile, 'utf8')) : {};
  return { vocab, merges, byteFallback: json.model.byte_fallback === true, added, config: isRecord(config) ? config : {} };
}

export function tokenizerMetadata(modelDir: string, spec: ModelSpec): GgufMetadata {
  const t = readTokenizerFiles(modelDir);
  const spm = t.byteFallback || t.vocab.has('<0x00>');
  const tokens: string[] = new Array<string>(spec.vocabSize);
  const types = new Int32Array(spec.vocabSize);
  for (const [token, id] of t.vocab) if (id < spec.vocabSize) tokens[id] = token;
  const addedById = new Map(t.added.map((a) => [a.id, a]));
  for (const a of t.added) if (a.id < spec.vocabSize) tokens[a.id] = a.content;
  for (let id = 0; id < spec.vocabSize; id++) {
    const added = addedById.get(id);
    if (tokens[id] === undefined) {
      // config.json's vocab_size often exceeds the tokenizer's (padded embeddings).
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.unused;
    } else if (added) types[id] = added.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
    else if (spm && /^<0x[0-9A-F]{2}>$/.test(tokens[id])) types[id] = TOKEN_TYPE.byte;
    else types[id] = TOKEN_TYPE.normal;
  }
  const unk = t.vocab.get('<unk>');
  if (spm && unk !== undefined) types[unk] = TOKEN_TYPE.unknown;
  const md: GgufMetadata = [
    ['tokenizer.ggml.model', { type: 'string', value: spm ? 'llama' : 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: spm ? 'default' : (GPT2_PRE[spec.modelType] ?? 'default') }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types }],
  ];
  if (spm) {
    // SentencePiece BPE stores minus the merge rank as a piece's score, and the Llama-2
    // vocabulary is in merge order after its specials and bytes: -id keeps that order.
    const scores = Float32Array.from(types, (type, id) => (type === TOKEN_TYPE.normal ? -id : 0));
    md.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: scores }]);
    if (unk !== undefined) md.push(['tokenizer.ggml.unknown_token_id', { type: 'u32', value: unk }]);
  } else md.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: t.merges }]);
  if (spec.bosTokenId !== null) md.push(['tokenizer.ggml.bos_token_id', { type: 'u32', value: spec.bosTokenId }]);
  if (spec.eosTokenIds.length > 0) md.push(['tokenizer.ggml.eos_token_id', { type: 'u32', value: spec.eosTokenIds[0] }]);
  const addBos = typeof t.config.add_bos_token === 'boolean' ? t.config.add_bos_token : spm;
  const addEos = typeof t.config.add_eos_token === 'boolean' ? t.config.add_eos_token : false;
  md.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: addBos }]);
  md.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: addEos }]);
  if (typeof t.config.chat_template === 'string') md.push(['tokenizer.chat_template', { type: 'string', value: t.config.chat_template }]);
  return md;
}
