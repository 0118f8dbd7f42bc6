// Expert load on the main thread, from the engine's step reports: exact cumulative counts per
// (layer, expert) for the counters, and per layer a sliding window over the most recent
// routed tokens for the balance statistics.
import type { MoeMlpSpec, ModelSpec } from '../../models/spec.ts';
import type { StepReport } from '../engine/api.ts';
import { type LoadSummary, summarizeLoad } from './load-stats.ts';

/** The last `windowTokens` tokens' expert choices of one layer, with per-expert counts kept current. */
export class LoadWindow {
  readonly loads: Int32Array;
  private readonly ring: Int32Array;
  private next = 0;
  private size = 0;

  constructor(
    numExperts: number,
    readonly topK: number,
    windowTokens: number,
  ) {
    this.loads = new Int32Array(numExperts);
    this.ring = new Int32Array(windowTokens * topK);
  }

  /** Tokens currently in the window. */
  get numTokens(): number {
    return this.size / this.topK;
  }

  /** `expertIds`: [tokens * topK], token-major, oldest first. */
  push(expertIds: Int32Array): void {
    const capacity = this.ring.length;
    // Only the newest `capacity` choices can stay; the rest would be evicted at once.
    const start = Math.max(0, expertIds.length - capacity);
    for (let i = start; i < expertIds.length; i++) {
      if (this.size === capacity) this.loads[this.ring[this.next]]--;
      else this.size++;
      this.ring[this.next] = expertIds[i];
      this.loads[expertIds[i]]++;
      this.next = (this.next + 1) % capacity;
    }
  }
}

export interface LayerLoad {
  layer: number;
  numExperts: number;
  topK: number;
  hasSharedExperts: boolean;
  /** Cumulative since start: tokens routed to each expert. */
  routedTokens: Float64Array;
  /** Cumulative tokens this layer routed (each counted once, not top-k times). */
  numTokens: number;
  window: LoadWindow;
}

export interface LayerWindowStats extends LoadSummary {
  layer: number;
  numTokens: number;
  loads: number[];
}

export class ExpertLoadTracker {
  readonly layers: LayerLoad[];

  constructor(
    spec: ModelSpec,
    readonly windowTokens: number,
  ) {
    this.layers = [];
    spec.mlp.forEach((mlp, layer) => {
      if (mlp.kind !== 'moe') return;
      this.layers.push(newLayerLoad(layer, mlp, windowTokens));
    });
  }

  record(report: StepReport): void {
    if (report.moeLayers.length !== this.layers.length) {
      throw new Error(`step report has ${report.moeLayers.length} MoE layers; the model has ${this.layers.length}`);
    }
    report.expertIds.forEach((ids, i) => {
      const layer = this.layers[i];
      for (let j = 0; j < ids.length; j++) layer.routedTokens[ids[j]]++;
      layer.numTokens += report.numTokens;
      layer.window.push(ids);
    });
  }

  /** The current window of every MoE layer with its balance statistics. */
  windowStats(): LayerWindowStats[] {
    return this.layers.map(({ layer, window }) => ({
      layer,
      numTokens: window.numTokens,
      loads: Array.from(window.loads),
      ...summarizeLoad(window.loads),
    }));
  }
}

function newLayerLoad(layer: number, mlp: MoeMlpSpec, windowTokens: number): LayerLoad {
  return {
    layer,
    numExperts: mlp.numRoutedExperts,
    topK: mlp.numExpertsPerToken,
    hasSharedExperts: mlp.sharedIntermediateSize > 0,
    routedTokens: new Float64Array(mlp.numRoutedExperts),
    numTokens: 0,
    window: new LoadWindow(mlp.numRoutedExperts, mlp.numExpertsPerToken, windowTokens),
  };
}
