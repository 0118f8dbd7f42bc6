// model_type -> family definition. An explicit import map rather than discovery by name, so
// the supported set is visible here and a typo is a compile error, not a runtime surprise.
import * as path from 'node:path';
import { readJsonObject, requireString, type JsonObject } from './config-fields.ts';
import { ConfigError } from './errors.ts';
import type { FamilyDefinition } from './family.ts';
import { deepseek } from './families/deepseek.ts';
import { deepseekV2 } from './families/deepseek-v2.ts';
import { deepseekV3 } from './families/deepseek-v3.ts';
import { mixtral } from './families/mixtral.ts';
import { olmoe } from './families/olmoe.ts';
import { qwen2Moe } from './families/qwen2-moe.ts';
import { qwen3Moe } from './families/qwen3-moe.ts';
import type { ModelSpec } from './spec.ts';

const FAMILIES: ReadonlyMap<string, FamilyDefinition> = new Map(
  [deepseek, mixtral, qwen2Moe, qwen3Moe, olmoe, deepseekV2, deepseekV3].map((family) => [family.modelType, family]),
);

export function supportedModelTypes(): string[] {
  return [...FAMILIES.keys()];
}

/** The family serving `modelType`; ConfigError (naming `file`) listing the supported ones otherwise. */
export function familyFor(modelType: string, file: string): FamilyDefinition {
  const family = FAMILIES.get(modelType);
  if (family === undefined) {
    const supported = supportedModelTypes()
      .map((t) => `"${t}"`)
      .join(', ');
    throw new ConfigError(file, 'model_type', `"${modelType}" is not supported (supported: ${supported})`);
  }
  return family;
}

export interface LoadedModelSpec {
  spec: ModelSpec;
  family: FamilyDefinition;
  /** config.json as parsed, for keys the spec does not carry. */
  config: Record<string, unknown>;
}

/** Reads `dir`/config.json and parses it with the family its model_type names. */
export function loadModelSpec(dir: string): LoadedModelSpec {
  const file = path.join(dir, 'config.json');
  const config: JsonObject = readJsonObject(file);
  const family = familyFor(requireString(config, 'model_type', file), file);
  return { spec: family.parseConfig(config, file), family, config };
}
