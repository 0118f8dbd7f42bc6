// Serving metrics (vLLM's names with the `moe_` prefix): request counts and latencies per
// sequence, model steps, scheduler and cache state, HTTP responses by status.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EngineStats, GenerationEvent, StepReport } from '../engine/api.ts';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const TOKEN_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2.5];
const REQUEST_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];
const TOKEN_COUNT_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];

/** Per sequence, in performance.now() milliseconds. */
interface SequenceClock {
  acceptedAt: number;
  lastTokenAt: number | null;
}

export class ServingMetrics {
  private readonly clocks = new Map<string, SequenceClock>();
  /** The engine's queues and cache as of its last step; null before the model is ready. */
  private engineStats: () => EngineStats | null = () => null;
  private readonly promptTokens: Counter;
  private readonly generationTokens: Counter;
  private readonly finished: Counter<'finished_reason'>;
  private readonly http: Counter<'method' | 'route' | 'status'>;
  private readonly ttft: Histogram;
  private readonly itl: Histogram;
  private readonly e2e: Histogram;
  private readonly queue: Histogram;
  private readonly prefill: Histogram;
  private readonly decode: Histogram;
  private readonly stepDuration: Histogram;
  private readonly stepTokens: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    const counter = (name: string, help: string) => new Counter({ name, help, registers });
    const histogram = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, buckets, registers });
    this.engineGauges(registry);
    this.promptTokens = counter('moe_prompt_tokens_total', 'Prompt tokens of finished sequences.');
    this.generationTokens = counter('moe_generation_tokens_total', 'Generated tokens.');
    this.finished = new Counter({
      name: 'moe_request_finished_total',
      help: 'Finished sequences by finish reason (stop, length, abort, error).',
      labelNames: ['finished_reason'],
      registers,
    });
    this.http = new Counter({
      name: 'moe_http_requests_total',
      help: 'HTTP responses by method, route and status code.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.ttft = histogram(
      'moe_time_to_first_token_seconds',
      'From acceptance by the engine to the first generated token.',
      LATENCY_BUCKETS,
    );
    this.itl = histogram('moe_inter_token_latency_seconds', 'Between consecutive generated tokens of a sequence.', TOKEN_LATENCY_BUCKETS);
    this.e2e = histogram('moe_e2e_request_latency_seconds', 'From acceptance by the engine to the end of the sequence.', REQUEST_BUCKETS);
    this.queue = histogram(
      'moe_request_queue_time_seconds',
      'From arrival in the engine to the first step that ran the sequence.',
      LATENCY_BUCKETS,
    );
    this.prefill = histogram('moe_request_prefill_time_seconds', 'Time in steps that processed the prompt.', REQUEST_BUCKETS);
    this.decode = histogram('moe_request_decode_time_seconds', 'Time in decode steps.', REQUEST_BUCKETS);
    this.stepDuration = histogram(
      'moe_model_step_duration_seconds',
      'Duration of one model step (all sequences of the batch).',
      TOKEN_LATENCY_BUCKETS,
    );
    this.stepTokens = histogram('moe_step_tokens', 'Tokens processed per model step.', TOKEN_COUNT_BUCKETS);
    for (const reason of ['stop', 'length', 'abort', 'error']) this.finished.inc({ finished_reason: reason }, 0);
  }

  /** One engine event of one sequence; `now` in performance.now() milliseconds. */
  onEvent(seqId: string, event: GenerationEvent, now: number): void {
    if (event.type === 'accepted') this.clocks.set(seqId, { acceptedAt: now, lastTokenAt: null });
    const clock = this.clocks.get(seqId);
    if (event.type === 'token') {
      this.generationTokens.inc();
      if (clock === undefined) return;
      if (clock.lastTokenAt === null) this.ttft.observe((now - clock.acceptedAt) / 1000);
      else this.itl.observe((now - clock.lastTokenAt) / 1000);
      clock.lastTokenAt = now;
    } else if (event.type === 'finished') {
      this.clocks.delete(seqId);
      this.finished.inc({ finished_reason: event.finishReason });
      this.promptTokens.inc(event.promptTokens);
      this.queue.observe(event.queueMs / 1000);
      this.prefill.observe(event.prefillMs / 1000);
      this.decode.observe(event.decodeMs / 1000);
      if (clock !== undefined) this.e2e.observe((now - clock.acceptedAt) / 1000);
    } else if (event.type === 'error') {
      this.clocks.delete(seqId);
      this.finished.inc({ finished_reason: 'error' });
    }
  }

  onStep(report: StepReport): void {
    this.stepDuration.observe(report.elapsedMs / 1000);
    this.stepTokens.observe(report.numTokens);
  }

  attach(engineStats: () => EngineStats): void {
    this.engineStats = engineStats;
  }

  /** Read from the engine's latest stats when Prometheus scrapes. */
  private engineGauges(registry: Registry): void {
    const registers = [registry];
    const gauge = (name: string, help: string, pick: (s: EngineStats) => number): void => {
      const metric: Gauge = new Gauge({ name, help, registers, collect: () => metric.set(this.readStats(pick)) });
    };
    // The engine keeps running totals; a counter advances by what it gained since the last scrape.
    const total = (name: string, help: string, pick: (s: EngineStats) => number): void => {
      let published = 0;
      const metric: Counter = new Counter({
        name,
        help,
        registers,
        collect: () => {
          const value = this.readStats(pick);
          if (value > published) metric.inc(value - published);
          published = Math.max(published, value);
        },
      });
    };
    gauge('moe_num_requests_running', 'Sequences in the running set after the last model step.', (s) => s.numRunning);
    gauge('moe_num_requests_waiting', 'Sequences waiting to be scheduled after the last model step.', (s) => s.numWaiting);
    gauge('moe_kv_cache_usage_ratio', 'Fraction of KV cache blocks in use.', (s) =>
      s.kvBlocksTotal > 0 ? s.kvBlocksUsed / s.kvBlocksTotal : 0,
    );
    gauge('moe_kv_cache_num_blocks', 'KV cache blocks in the pool.', (s) => s.kvBlocksTotal);
    total('moe_num_preemptions_total', 'Sequences preempted by the scheduler (recomputed later).', (s) => s.numPreemptions);
    total('moe_prefix_cache_query_tokens_total', 'Prompt tokens looked up in the prefix cache.', (s) => s.prefixCacheQueryTokens);
    total('moe_prefix_cache_hit_tokens_total', 'Prompt tokens served from the prefix cache.', (s) => s.prefixCacheHitTokens);
  }

  private readStats(pick: (s: EngineStats) => number): number {
    const stats = this.engineStats();
    return stats === null ? 0 : pick(stats);
  }

  onHttpResponse(method: string, route: string, status: number): void {
    this.http.inc({ method, route, status: String(status) });
  }
}
