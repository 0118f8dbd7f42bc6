// Expert-load series, computed from the tracker when Prometheus scrapes. Per layer always:
// routed and shared-expert token counters and the window's balance statistics (bounded:
// one series per MoE layer each). Per (layer, expert) counters only when enabled: their
// count is MoE layers x routed experts, e.g. 26 x 64 = 1,664 for DeepSeekMoE 16B.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ExpertLoadTracker, LayerWindowStats } from './expert-load.ts';

type LayerLabel = 'layer';

/**
 * Advances a counter series to a cumulative value the tracker holds. `published` starts at -1:
 * the first scrape creates the series even at zero, so every layer and expert has one.
 */
function advance<T extends string>(
  counter: Counter<T>,
  labels: Record<T, string>,
  published: Float64Array,
  index: number,
  value: number,
): void {
  if (published[index] < 0) {
    counter.inc(labels, 0);
    published[index] = 0;
  }
  const delta = value - published[index];
  if (delta > 0) counter.inc(labels, delta);
  published[index] = value;
}

export class ExpertMetrics {
  private tracker: ExpertLoadTracker | null = null;

  constructor(registry: Registry, perExpertSeries: boolean) {
    const registers = [registry];
    const labelNames: LayerLabel[] = ['layer'];
    const layerGauge = (name: string, help: string, pick: (s: LayerWindowStats) => number): void => {
      const gauge: Gauge<LayerLabel> = new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect: () => {
          // O(layers x experts) per gauge and scrape: cheap next to a model step.
          for (const s of this.tracker?.windowStats() ?? []) gauge.set({ layer: String(s.layer) }, pick(s));
        },
      });
    };
    layerGauge('moe_expert_load_window_tokens', "Tokens in the layer's expert-load window.", (s) => s.numTokens);
    layerGauge('moe_expert_load_max_mean_ratio', "Window: busiest expert's load / mean expert load (1 = even).", (s) => s.maxMeanRatio);
    layerGauge('moe_expert_load_cv', 'Window: coefficient of variation of expert loads (0 = even).', (s) => s.coefficientOfVariation);
    layerGauge(
      'moe_router_entropy_normalized',
      'Window: entropy of the expert-load distribution / ln(experts) (1 = even).',
      (s) => s.normalizedEntropy,
    );
    layerGauge(
      'moe_expert_active_fraction',
      "Window: fraction of the layer's routed experts that received tokens.",
      (s) => s.activeFraction,
    );
    this.layerCounter(
      'moe_layer_routed_tokens_total',
      'Tokens routed by the layer (each once; x top-k = its expert choices).',
      registry,
      (layer) => layer.numTokens,
    );
    this.layerCounter('moe_shared_expert_tokens_total', "Tokens processed by the layer's shared experts.", registry, (layer) =>
      layer.hasSharedExperts ? layer.numTokens : 0,
    );
    if (perExpertSeries) this.expertCounter(registry);
  }

  attach(tracker: ExpertLoadTracker): void {
    this.tracker = tracker;
  }

  private layerCounter(
    name: string,
    help: string,
    registry: Registry,
    value: (layer: ExpertLoadTracker['layers'][number]) => number,
  ): void {
    let published = new Float64Array(0);
    const counter: Counter<LayerLabel> = new Counter({
      name,
      help,
      labelNames: ['layer'],
      registers: [registry],
      collect: () => {
        const layers = this.tracker?.layers ?? [];
        if (published.length !== layers.length) published = new Float64Array(layers.length).fill(-1);
        layers.forEach((layer, i) => advance(counter, { layer: String(layer.layer) }, published, i, value(layer)));
      },
    });
  }

  private expertCounter(registry: Registry): void {
    let published: Float64Array[] = [];
    const counter: Counter<'layer' | 'expert'> = new Counter({
      name: 'moe_expert_routed_tokens_total',
      help: 'Tokens routed to each expert of each MoE layer (a token counts once for each of its top-k experts).',
      labelNames: ['layer', 'expert'],
      registers: [registry],
      collect: () => {
        const layers = this.tracker?.layers ?? [];
        if (published.length !== layers.length) published = layers.map((layer) => new Float64Array(layer.numExperts).fill(-1));
        layers.forEach((layer, i) => {
          for (let e = 0; e < layer.numExperts; e++) {
            advance(counter, { layer: String(layer.layer), expert: String(e) }, published[i], e, layer.routedTokens[e]);
          }
        });
      },
    });
  }
}
