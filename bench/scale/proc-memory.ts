// Memory and CPU of a process from /proc (Linux), the machine's free memory and disk: what
// bench:scale measures and checks before it writes tens of gigabytes.
import { readFileSync, statfsSync } from 'node:fs';

export interface ProcessMemory {
  rss: number;
  /** Private anonymous pages: ONNX Runtime's prepacked weights, the JS heap, the KV cache. */
  anon: number;
  /** File pages mapped: code, and weight files ONNX Runtime maps. */
  file: number;
  /** Peak RSS (VmHWM). */
  peak: number;
}

function kib(text: string, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Null once the process is gone. */
export function processMemory(pid: number): ProcessMemory | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rss: kib(status, 'VmRSS'), anon: kib(status, 'RssAnon'), file: kib(status, 'RssFile'), peak: kib(status, 'VmHWM') };
  } catch {
    return null;
  }
}

/** User + system CPU seconds of a process (all its threads); null once it is gone. */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
  } catch {
    return null;
  }
}

/** Samples a process every `everyMs` until stopped: its largest RSS and its last CPU reading. */
export function sampleProcess(pid: number, everyMs = 200): { stop(): { peakRss: number; peakAnon: number; cpuSeconds: number } } {
  let peakRss = 0;
  let peakAnon = 0;
  let cpuSeconds = 0;
  const sample = (): void => {
    const m = processMemory(pid);
    if (m) {
      peakRss = Math.max(peakRss, m.rss, m.peak);
      peakAnon = Math.max(peakAnon, m.anon);
    }
    cpuSeconds = processCpuSeconds(pid) ?? cpuSeconds;
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop: () => {
      sample();
      clearInterval(timer);
      return { peakRss, peakAnon, cpuSeconds };
    },
  };
}

export interface MachineResources {
  memTotal: number;
  memAvailable: number;
  /** Free bytes on the file system holding `dir`, for this user. */
  diskFree: number;
}

export function machineResources(dir: string): MachineResources {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const fs = statfsSync(dir);
  return { memTotal: kib(meminfo, 'MemTotal'), memAvailable: kib(meminfo, 'MemAvailable'), diskFree: fs.bavail * fs.bsize };
}

export function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}
