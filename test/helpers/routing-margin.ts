// How close a token's routing is to a tie: the gap between the last chosen and the first
// unchosen selection score (and, with group-limited routing, between the last kept and the
// first dropped group). Two correct implementations may disagree only where a gap is within
// their rounding.
import { type GatingConfig, sigmoidInPlace, softmaxInPlace } from '../../runtime/moe/router.ts';

export interface RoutingMargin {
  /** Selection score of the k-th chosen expert minus that of the best one not chosen. */
  expert: number;
  /** Same for groups (Infinity without group-limited routing). */
  group: number;
  /** The largest selection score, to scale the gaps by. */
  scale: number;
}

export function routingMargin(logits: Float32Array, token: number, cfg: GatingConfig): RoutingMargin {
  const E = cfg.numExperts;
  const scores = logits.slice(token * E, (token + 1) * E);
  if (cfg.scoringFunc === 'softmax') softmaxInPlace(scores);
  else sigmoidInPlace(scores);
  let sel = Array.from(scores, (s, e) => s + (cfg.correctionBias?.[e] ?? 0));
  const scale = Math.max(...sel.map(Math.abs), 1e-30);
  let group = Infinity;
  const G = cfg.numGroups ?? 1;
  if (G > 1) {
    const size = E / G;
    const groupScores = Array.from({ length: G }, (_, g) => {
      const members = sel.slice(g * size, (g + 1) * size).sort((a, b) => b - a);
      return cfg.groupScore === 'top2-sum' && size > 1 ? members[0] + members[1] : members[0];
    });
    const order = [...groupScores.keys()].sort((a, b) => groupScores[b] - groupScores[a] || a - b);
    const kept = new Set(order.slice(0, cfg.topkGroups ?? G));
    const tg = cfg.topkGroups ?? G;
    if (tg < G) group = groupScores[order[tg - 1]] - groupScores[order[tg]];
    sel = sel.map((v, e) => (kept.has(Math.floor(e / size)) ? v : (cfg.maskedGroupScore ?? -Infinity)));
  }
  const sorted = [...sel].sort((a, b) => b - a);
  const expert = cfg.topK < E ? sorted[cfg.topK - 1] - sorted[cfg.topK] : Infinity;
  return { expert: Number.isNaN(expert) ? Infinity : expert, group, scale };
}

/** Whether a token's choice is within `relative` (times its largest score) of a tie. */
export function nearTie(m: RoutingMargin, relative: number): boolean {
  const eps = relative * m.scale;
  return m.expert <= eps || m.group <= eps;
}
