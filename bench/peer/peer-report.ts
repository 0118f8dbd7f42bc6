// bench:peer's printed table and the machine it ran on (the load matters on a shared machine).
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { printTable } from '../table.ts';
import type { MetricSummary, Spread } from './peer-stats.ts';

export interface MachineDescription {
  cpu: string;
  cores: number;
  memoryGiB: number;
  vectorExtensions: string[];
  loadAverage: number[];
}

export function machineDescription(): MachineDescription {
  let flags: string[] = [];
  try {
    const line = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    flags = line.split(/\s+/).filter((f) => /^(avx|avx2|fma|f16c|avx512\w*|avx_vnni|amx\w*)$/.test(f));
  } catch {
    // not Linux: no flags
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: +(totalmem() / 1024 ** 3).toFixed(1),
    vectorExtensions: flags,
    loadAverage: loadavg().map((l) => +l.toFixed(2)),
  };
}

const number = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));
const withRange = (s: Spread, f: (v: number) => string): string => `${f(s.median)} [${f(s.min)}-${f(s.max)}]`;
const ratio = (v: number): string => v.toFixed(2);

export function printPeerTable(summaries: MetricSummary[], rounds: number): void {
  const configs = [...new Set(summaries.flatMap((s) => Object.keys(s.llama)))];
  const header = ['metric', 'moe-server', ...configs.flatMap((c) => [`llama.cpp ${c}`, `ratio`]), 'ratio vs best'];
  const rows = summaries.map((s) => [
    `${s.name} ${s.higherIsBetter ? '(higher better)' : '(lower better)'}`,
    withRange(s.moe, number),
    ...configs.flatMap((c) => {
      const l = s.llama[c];
      return l ? [withRange(l.value, number), withRange(l.ratio, ratio)] : ['-', '-'];
    }),
    withRange(s.vsBest.ratio, ratio),
  ]);
  printTable(header, rows);
  console.log(
    `median [min-max] of ${rounds} rounds; ratio = moe-server / llama.cpp paired per round; "best" = llama.cpp's better configuration ` +
      'in each round. llama.cpp f32 = F32 KV cache, flash attention off; default = node-llama-cpp defaults (F16 KV, flash attention auto).',
  );
}
