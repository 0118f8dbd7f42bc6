// Typed getters over untrusted JSON (config.json and friends). Each throws a ConfigError that
// names the file and the key, so a bad checkpoint is fixed from the message alone.
// Hugging Face writes Python's None as null, so the optional getters treat null as absent.
import * as fs from 'node:fs';
import { ConfigError } from './errors.ts';

export type JsonObject = Record<string, unknown>;

export interface NumberBounds {
  /** Inclusive lower bound. */
  min?: number;
  /** Inclusive upper bound. */
  max?: number;
  /** Exclusive lower bound (e.g. 0 for epsilons and factors). */
  above?: number;
}

export interface FieldOptions extends NumberBounds {
  /** Name used in errors when `key` sits inside a nested object, e.g. "rope_scaling.type". */
  label?: string;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads and parses a JSON file whose top level must be an object. */
export function readJsonObject(file: string): JsonObject {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf-8');
  } catch (error) {
    throw new ConfigError(file, '(file)', `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  return parseJsonObject(text, file);
}

export function parseJsonObject(text: string, file: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(file, '(root)', `is not valid JSON (${(error as Error).message})`);
  }
  if (!isJsonObject(value)) throw new ConfigError(file, '(root)', 'must be a JSON object');
  return value;
}

function present(obj: JsonObject, key: string): boolean {
  return obj[key] !== undefined && obj[key] !== null;
}

function describeBounds(bounds: NumberBounds): string {
  const parts: string[] = [];
  if (bounds.above !== undefined) parts.push(`> ${bounds.above}`);
  if (bounds.min !== undefined) parts.push(`>= ${bounds.min}`);
  if (bounds.max !== undefined) parts.push(`<= ${bounds.max}`);
  return parts.length === 0 ? '' : ` ${parts.join(' and ')}`;
}

function checkBounds(value: number, bounds: NumberBounds): boolean {
  return (
    (bounds.min === undefined || value >= bounds.min) &&
    (bounds.max === undefined || value <= bounds.max) &&
    (bounds.above === undefined || value > bounds.above)
  );
}

function shown(value: unknown): string {
  return value === undefined ? 'missing' : `got ${JSON.stringify(value)}`;
}

export function requireInt(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): number {
  const value = obj[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || !checkBounds(value, options)) {
    throw new ConfigError(file, options.label ?? key, `must be an integer${describeBounds(options)} (${shown(value)})`);
  }
  return value;
}

export function optionalInt(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): number | undefined {
  return present(obj, key) ? requireInt(obj, key, file, options) : undefined;
}

export function requireNumber(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): number {
  const value = obj[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || !checkBounds(value, options)) {
    throw new ConfigError(file, options.label ?? key, `must be a number${describeBounds(options)} (${shown(value)})`);
  }
  return value;
}

export function optionalNumber(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): number | undefined {
  return present(obj, key) ? requireNumber(obj, key, file, options) : undefined;
}

export function requireBool(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): boolean {
  const value = obj[key];
  if (typeof value !== 'boolean') {
    throw new ConfigError(file, options.label ?? key, `must be true or false (${shown(value)})`);
  }
  return value;
}

export function optionalBool(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): boolean | undefined {
  return present(obj, key) ? requireBool(obj, key, file, options) : undefined;
}

export function requireString(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): string {
  const value = obj[key];
  if (typeof value !== 'string') {
    throw new ConfigError(file, options.label ?? key, `must be a string (${shown(value)})`);
  }
  return value;
}

export function optionalString(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): string | undefined {
  return present(obj, key) ? requireString(obj, key, file, options) : undefined;
}

export function optionalObject(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): JsonObject | undefined {
  if (!present(obj, key)) return undefined;
  const value = obj[key];
  if (!isJsonObject(value)) throw new ConfigError(file, options.label ?? key, `must be an object or null (${shown(value)})`);
  return value;
}

/** An integer or a list of integers (eos_token_id may be either); absent or null gives undefined. */
export function optionalIntList(obj: JsonObject, key: string, file: string, options: FieldOptions = {}): number[] | undefined {
  if (!present(obj, key)) return undefined;
  const value = obj[key];
  const list = Array.isArray(value) ? value : [value];
  const valid = list.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && checkBounds(v, options));
  if (!valid) {
    throw new ConfigError(
      file,
      options.label ?? key,
      `must be an integer or a list of integers${describeBounds(options)} (${shown(value)})`,
    );
  }
  return list as number[];
}

/** A string restricted to `allowed`; `fallback` when absent or null. */
export function optionalEnum<T extends string>(
  obj: JsonObject,
  key: string,
  file: string,
  allowed: readonly T[],
  fallback: T,
  options: FieldOptions = {},
): T {
  const value = optionalString(obj, key, file, options);
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(file, options.label ?? key, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')} (got "${value}")`);
  }
  return value as T;
}
