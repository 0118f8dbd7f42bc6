// The server's metrics registry: serving metrics and expert load, fed by the engine client's
// observers once the model is ready. One registry per app (tests build several per process).
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { ServedModel } from '../served-model.ts';
import { ExpertLoadTracker } from './expert-load.ts';
import { ExpertMetrics } from './expert-metrics.ts';
import { ServingMetrics } from './serving-metrics.ts';

export interface MetricsOptions {
  /** Tokens per layer in the sliding window of the balance statistics. */
  expertLoadWindow: number;
  /** Export the per-(layer, expert) counters (layers x experts series). */
  perExpertSeries: boolean;
}

/** GET /v1/experts/stats. */
export interface ExpertStatsBody {
  object: 'expert_load';
  model: string;
  window_tokens: number;
  layers: Array<{
    layer: number;
    num_experts: number;
    top_k: number;
    /** Tokens in this layer's window now (at most window_tokens). */
    num_tokens: number;
    /** Per expert: choices in the window. */
    loads: number[];
    max_mean_ratio: number;
    imbalance: number;
    cv: number;
    normalized_entropy: number;
    active_fraction: number;
    /** Since start: tokens the layer routed, and choices per expert. */
    routed_tokens_total: number;
    expert_routed_tokens_total: number[];
  }>;
}

/**
 * Gauges of prom-client's defaults that promtool's lint refuses (a "_total" suffix on a
 * gauge); each is the sum of the per-type gauge of the same name without it.
 */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * prom-client's process and Node.js runtime metrics (CPU, resident memory, heap, event-loop
 * lag, GC) under their standard names, which dashboards everywhere know. Their GC observer and
 * event-loop monitor live as long as the process (prom-client cannot stop them): one pair per
 * app, which is one per server.
 */
function processMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly serving: ServingMetrics;
  private readonly experts: ExpertMetrics;
  private attached: { model: ServedModel; tracker: ExpertLoadTracker; detach: () => void } | null = null;

  constructor(readonly options: MetricsOptions) {
    processMetrics(this.registry);
    this.serving = new ServingMetrics(this.registry);
    this.experts = new ExpertMetrics(this.registry, options.perExpertSeries);
  }

  /** Starts observing the model's engine; every series is labelled with the model's id. */
  attach(model: ServedModel): void {
    this.registry.setDefaultLabels({ model_name: model.id });
    const tracker = new ExpertLoadTracker(model.engine.info.spec, this.options.expertLoadWindow);
    this.experts.attach(tracker);
    const stopEvents = model.engine.observe((seqId, event) => this.serving.onEvent(seqId, event, performance.now()));
    this.serving.attach(() => model.engine.stats);
    const stopSteps = model.engine.observeSteps((report) => {
      this.serving.onStep(report);
      tracker.record(report);
    });
    this.attached = { model, tracker, detach: () => (stopEvents(), stopSteps()) };
  }

  detach(): void {
    this.attached?.detach();
  }

  onHttpResponse(method: string, route: string, status: number): void {
    this.serving.onHttpResponse(method, route, status);
  }

  /** Prometheus text exposition format. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The current windows, or null before the model is ready. */
  expertStats(): ExpertStatsBody | null {
    if (this.attached === null) return null;
    const { model, tracker } = this.attached;
    const windows = tracker.windowStats();
    return {
      object: 'expert_load',
      model: model.id,
      window_tokens: tracker.windowTokens,
      layers: tracker.layers.map((layer, i) => ({
        layer: layer.layer,
        num_experts: layer.numExperts,
        top_k: layer.topK,
        num_tokens: windows[i].numTokens,
        loads: windows[i].loads,
        max_mean_ratio: windows[i].maxMeanRatio,
        imbalance: windows[i].imbalance,
        cv: windows[i].coefficientOfVariation,
        normalized_entropy: windows[i].normalizedEntropy,
        active_fraction: windows[i].activeFraction,
        routed_tokens_total: layer.numTokens,
        expert_routed_tokens_total: Array.from(layer.routedTokens),
      })),
    };
  }
}
