// Polls /health while a load level runs: its latency (is the HTTP thread responsive under
// load?), the peak KV cache use and the preemptions during the level.

import { percentile } from './table.ts';

export interface HealthProbe {
  samples: number;
  latencyMs: { p50: number; p99: number; max: number };
  peakKvUsage: number;
  preemptions: number;
}

interface HealthBody {
  engine: { preemptions: number; kv_cache: { usage: number } };
}

export function probeHealth(baseUrl: string, everyMs: number): { stop(): Promise<HealthProbe> } {
  const latencies: number[] = [];
  let peakKvUsage = 0;
  let firstPreemptions: number | null = null;
  let lastPreemptions = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const body = (await (await fetch(`${baseUrl}/health`)).json()) as HealthBody;
      latencies.push(performance.now() - started);
      peakKvUsage = Math.max(peakKvUsage, body.engine.kv_cache.usage);
      firstPreemptions ??= body.engine.preemptions;
      lastPreemptions = body.engine.preemptions;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return {
        samples: latencies.length,
        latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: percentile(latencies, 1) },
        peakKvUsage,
        preemptions: lastPreemptions - (firstPreemptions ?? lastPreemptions),
      };
    },
  };
}
