import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  optionalBool,
  optionalEnum,
  optionalInt,
  optionalIntList,
  optionalNumber,
  optionalObject,
  optionalString,
  readJsonObject,
  requireBool,
  requireInt,
  requireNumber,
  requireString,
} from '../../models/config-fields.ts';
import { ConfigError } from '../../models/errors.ts';
import { removeTempDirs, tempDir, thrownBy } from './helpers.ts';

afterAll(removeTempDirs);

const FILE = '/models/x/config.json';
const obj = { n: 4, f: 0.5, s: 'silu', b: true, nul: null, list: [1, 2], neg: -1, big: 2 ** 60, o: { type: 'linear' } };

function expectConfigError(fn: () => unknown, key: string, detail: RegExp): void {
  const error = thrownBy(fn);
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).key).toBe(key);
  expect((error as ConfigError).file).toBe(FILE);
  expect(error.message).toContain(FILE);
  expect(error.message).toContain(`"${key}"`);
  expect(error.message).toMatch(detail);
}

describe('config field getters', () => {
  it('return typed values', () => {
    expect(requireInt(obj, 'n', FILE, { min: 1 })).toBe(4);
    expect(requireNumber(obj, 'f', FILE, { above: 0 })).toBe(0.5);
    expect(requireString(obj, 's', FILE)).toBe('silu');
    expect(requireBool(obj, 'b', FILE)).toBe(true);
    expect(optionalObject(obj, 'o', FILE)).toEqual({ type: 'linear' });
    expect(optionalIntList(obj, 'list', FILE)).toEqual([1, 2]);
    expect(optionalIntList(obj, 'n', FILE)).toEqual([4]);
    expect(optionalEnum(obj, 's', FILE, ['silu'], 'silu')).toBe('silu');
  });

  it('treat absent and null alike for optional keys', () => {
    for (const key of ['missing', 'nul']) {
      expect(optionalInt(obj, key, FILE)).toBeUndefined();
      expect(optionalNumber(obj, key, FILE)).toBeUndefined();
      expect(optionalBool(obj, key, FILE)).toBeUndefined();
      expect(optionalString(obj, key, FILE)).toBeUndefined();
      expect(optionalObject(obj, key, FILE)).toBeUndefined();
      expect(optionalIntList(obj, key, FILE)).toBeUndefined();
      expect(optionalEnum(obj, key, FILE, ['a', 'b'], 'b')).toBe('b');
    }
  });

  it('throw ConfigError naming key and file', () => {
    expectConfigError(() => requireInt(obj, 'missing', FILE), 'missing', /must be an integer \(missing\)/);
    expectConfigError(() => requireInt(obj, 'f', FILE), 'f', /integer.*got 0.5/);
    expectConfigError(() => requireInt(obj, 's', FILE), 's', /integer.*got "silu"/);
    expectConfigError(() => requireInt(obj, 'neg', FILE, { min: 0 }), 'neg', />= 0/);
    expectConfigError(() => requireInt(obj, 'big', FILE), 'big', /integer/);
    expectConfigError(() => requireNumber(obj, 'n', FILE, { max: 3 }), 'n', /<= 3/);
    expectConfigError(() => requireNumber(obj, 'f', FILE, { above: 1 }), 'f', /> 1/);
    expectConfigError(() => requireBool(obj, 'n', FILE), 'n', /true or false/);
    expectConfigError(() => requireString(obj, 'b', FILE), 'b', /string/);
    expectConfigError(() => optionalObject(obj, 'list', FILE), 'list', /object or null/);
    expectConfigError(() => optionalIntList(obj, 's', FILE), 's', /list of integers/);
    expectConfigError(() => optionalEnum(obj, 's', FILE, ['gelu', 'relu'], 'gelu'), 's', /"gelu", "relu".*got "silu"/);
    expectConfigError(() => requireString({}, 'type', FILE, { label: 'rope_scaling.type' }), 'rope_scaling.type', /string/);
  });

  it('read JSON files, naming the file when missing or invalid', () => {
    const dir = tempDir();
    const good = path.join(dir, 'good.json');
    fs.writeFileSync(good, '{"a": 1}');
    expect(readJsonObject(good)).toEqual({ a: 1 });
    const missing = path.join(dir, 'missing.json');
    expect(thrownBy(() => readJsonObject(missing)).message).toMatch(new RegExp(`${missing}.*ENOENT`));
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{"a": ');
    expect(thrownBy(() => readJsonObject(bad)).message).toMatch(/not valid JSON/);
    fs.writeFileSync(bad, '[1]');
    expect(thrownBy(() => readJsonObject(bad))).toBeInstanceOf(ConfigError);
  });
});
