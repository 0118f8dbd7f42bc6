// How each setting's text (a flag or an environment variable) becomes its value, with an
// error that names where a bad one came from.
import type { Device } from '../runtime/device/device-plan.ts';
import { normalizeHostName } from './hosts.ts';
import { normalizeOrigin } from './origins.ts';

/** A flag or environment value that cannot be used; the message names where it came from. */
export class ConfigValueError extends Error {
  override name = 'ConfigValueError';
}

export const text = (raw: string): string => raw;
export const optionalText = (raw: string): string | null => raw;

export function integerIn(min: number, max: number) {
  return (raw: string, source: string): number => {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new ConfigValueError(`${source} must be an integer from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
}

export function oneOf<T extends string>(allowed: readonly T[]) {
  return (raw: string, source: string): T => {
    const match = allowed.find((value) => value === raw);
    if (match === undefined) throw new ConfigValueError(`${source} must be one of ${allowed.join(', ')}, got "${raw}"`);
    return match;
  };
}

/** cpu, cuda (device 0) or cuda:N. */
export function parseDevice(raw: string, source: string): Device {
  if (raw === 'cpu') return { kind: 'cpu' };
  const match = /^cuda(?::(\d{1,3}))?$/.exec(raw);
  if (match === null) throw new ConfigValueError(`${source} must be cpu, cuda or cuda:N, got "${raw}"`);
  return { kind: 'cuda', id: match[1] === undefined ? 0 : Number(match[1]) };
}

export function apiKeys(raw: string, source: string): string[] {
  const keys = raw.split(',').map((key) => key.trim());
  if (keys.some((key) => key.length === 0)) throw new ConfigValueError(`${source} has an empty API key`);
  return keys;
}

export function hostNames(raw: string, source: string): string[] {
  return raw.split(',').map((entry) => {
    const name = normalizeHostName(entry);
    if (name === null) throw new ConfigValueError(`${source} has "${entry.trim()}", which is not a host name or IP address (or * for any)`);
    return name;
  });
}

export function origins(raw: string, source: string): string[] {
  return raw.split(',').map((entry) => {
    const origin = normalizeOrigin(entry.trim());
    if (origin === null)
      throw new ConfigValueError(
        `${source} has "${entry.trim()}", which is not a web origin: scheme://host[:port] without a path (or * for any)`,
      );
    return origin;
  });
}
