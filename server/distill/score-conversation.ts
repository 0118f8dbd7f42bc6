// One conversation scored teacher-forced by the engine: a prompt-only request (maxTokens 0)
// whose prompt_logprobs events cover the response positions, and, with the router, whose
// routed events give every position's experts and gate weights (prefix cache off, so that
// every position runs for it). The result keeps the response positions only, plus the
// routing of every position.
import { defaultSamplingParams, type Engine, type GenerationRequest, type PromptLogprobs } from '../engine/api.ts';
import type { Span } from './conversations.ts';
import { responsePositions } from './conversations.ts';

export interface RouterShape {
  numMoeLayers: number;
  /** Experts chosen per token. */
  topK: number;
}

export interface ScoredConversation {
  id: string;
  inputIds: Int32Array;
  /** Response positions, ascending; the rows below follow them. */
  positions: Int32Array;
  tokenLogprobs: Float32Array;
  /** [positions * topK] */
  topIds: Int32Array;
  topLogprobs: Float32Array;
  tailLogprobs: Float32Array;
  /** [inputIds.length * numMoeLayers * router topK], layer-major within a token; null without --router. */
  router: { expertIds: Int32Array; weights: Float32Array } | null;
}

export interface ScoreOptions {
  topK: number;
  temperature: number;
  router: RouterShape | null;
}

export function scoringRequest(ids: readonly number[], spans: readonly Span[], options: ScoreOptions): GenerationRequest {
  return {
    prompt: [...ids],
    maxTokens: 0,
    sampling: { ...defaultSamplingParams },
    seed: null,
    stopTokenIds: [],
    ignoreEos: true,
    topLogprobs: null,
    promptLogprobs: { topK: options.topK, from: spans[0].start, temperature: options.temperature },
    routedExperts: options.router !== null,
    // Routing is wanted for every position: none of them may come from the cache.
    prefixCache: options.router === null,
  };
}

/** Copies a step's scores into the rows of the response positions they cover. */
function takeScores(scores: PromptLogprobs, rowOf: Map<number, number>, out: ScoredConversation, k: number): void {
  for (let i = 0; i < scores.tokens.length; i++) {
    const row = rowOf.get(scores.start + i);
    if (row === undefined) continue; // a user turn between two answers
    out.tokenLogprobs[row] = scores.logprobs[i];
    out.tailLogprobs[row] = scores.tailLogprobs[i];
    out.topIds.set(scores.topIds.subarray(i * k, (i + 1) * k), row * k);
    out.topLogprobs.set(scores.topLogprobs.subarray(i * k, (i + 1) * k), row * k);
  }
}

export async function scoreConversation(
  engine: Engine,
  id: string,
  ids: readonly number[],
  spans: readonly Span[],
  options: ScoreOptions,
  signal: AbortSignal,
): Promise<ScoredConversation | null> {
  const positions = responsePositions(spans);
  const k = options.topK;
  const n = positions.length;
  const numRouted = options.router === null ? 0 : ids.length * options.router.numMoeLayers * options.router.topK;
  const out: ScoredConversation = {
    id,
    inputIds: Int32Array.from(ids),
    positions,
    tokenLogprobs: new Float32Array(n),
    topIds: new Int32Array(n * k),
    topLogprobs: new Float32Array(n * k),
    tailLogprobs: new Float32Array(n),
    router: options.router === null ? null : { expertIds: new Int32Array(numRouted).fill(-1), weights: new Float32Array(numRouted) },
  };
  const rowOf = new Map<number, number>();
  positions.forEach((p, row) => rowOf.set(p, row));
  let numScored = 0;
  for await (const event of engine.generate(scoringRequest(ids, spans, options), signal)) {
    if (event.type === 'prompt_logprobs') {
      takeScores(event.scores, rowOf, out, k);
      numScored += event.scores.tokens.length;
    } else if (event.type === 'routed' && out.router !== null) {
      // Per layer [numTokens * k] -> per token [layers * k]; a recomputed position is overwritten alike.
      const layerK = options.router!.topK;
      const numLayers = event.expertIds.length;
      for (let t = 0; t < event.numTokens; t++) {
        for (let layer = 0; layer < numLayers; layer++) {
          const at = ((event.start + t) * numLayers + layer) * layerK;
          out.router.expertIds.set(event.expertIds[layer].subarray(t * layerK, (t + 1) * layerK), at);
          out.router.weights.set(event.expertWeights[layer].subarray(t * layerK, (t + 1) * layerK), at);
        }
      }
    } else if (event.type === 'error') {
      throw new Error(event.message);
    } else if (event.type === 'finished' && event.finishReason === 'abort') {
      return null;
    }
  }
  if (signal.aborted) return null;
  const expected = ids.length - spans[0].start;
  if (numScored !== expected) throw new Error(`the engine scored ${numScored} positions, expected ${expected}`);
  return out;
}
