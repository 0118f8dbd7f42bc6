import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../models/errors.ts';
import { deepseek } from '../../models/families/deepseek.ts';
import { familyFor, loadModelSpec, supportedModelTypes } from '../../models/registry.ts';
import { syntheticConfig } from '../../models/synthetic-presets.ts';
import { removeTempDirs, tempDir, thrownBy } from './helpers.ts';

afterAll(removeTempDirs);

describe('registry', () => {
  it('maps model_type deepseek to its family', () => {
    expect(familyFor('deepseek', 'config.json')).toBe(deepseek);
    expect(supportedModelTypes()).toEqual(['deepseek', 'mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v2', 'deepseek_v3']);
  });

  it('names the file and lists supported types for an unknown model_type', () => {
    const error = thrownBy(() => familyFor('llama', '/m/config.json'));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('/m/config.json');
    expect(error.message).toContain('"model_type"');
    expect(error.message).toContain('"llama"');
    expect(error.message).toContain('"deepseek"');
  });

  it('loads dir/config.json into a spec', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(syntheticConfig('tiny')));
    const { spec, family, config } = loadModelSpec(dir);
    expect(family).toBe(deepseek);
    expect(spec.numLayers).toBe(3);
    expect(config.model_type).toBe('deepseek');
  });

  it.each([
    ['a missing config.json', null, '(file)', /ENOENT/],
    ['invalid JSON', '{"model_type": ', '(root)', /not valid JSON/],
    ['no model_type', '{"hidden_size": 4}', 'model_type', /string/],
    [
      'an unknown model_type',
      '{"model_type": "llama"}',
      'model_type',
      /supported: "deepseek", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3"/,
    ],
  ])('ConfigError for %s', (_, contents, key, detail) => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    if (contents !== null) fs.writeFileSync(file, contents);
    const error = thrownBy(() => loadModelSpec(dir));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect(error.message).toContain(file);
    expect(error.message).toMatch(detail);
  });
});
