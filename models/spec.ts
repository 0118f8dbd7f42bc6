// What the engine needs to know about a model, independent of the family that produced it.
// Family definitions (models/families/*) turn a checkpoint's config.json into a ModelSpec and
// say where each weight lives in the checkpoint; everything downstream reads only this.

export type ScoringFunc = 'softmax' | 'sigmoid';

export interface RopeSpec {
  theta: number;
  /** Rotary dimensions per head (== headDim for the families in this file). */
  rotaryDim: number;
  /** Hugging Face rope_scaling; null when absent. */
  scaling: RopeScaling | null;
}

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number; originalMaxPositions: number };

/** A dense SwiGLU MLP layer (DeepSeekMoE's first_k_dense_replace layers). */
export interface DenseMlpSpec {
  kind: 'dense';
  intermediateSize: number;
}

/** A sparse MoE layer: routed experts chosen per token plus optional always-on shared experts. */
export interface MoeMlpSpec {
  kind: 'moe';
  numRoutedExperts: number;
  /** Experts chosen per token (k of top-k). */
  numExpertsPerToken: number;
  expertIntermediateSize: number;
  /** Width of the single fused shared-expert MLP; 0 when the model has none. */
  sharedIntermediateSize: number;
  scoringFunc: ScoringFunc;
  /** Renormalise the k chosen weights to sum to one. */
  normTopkProb: boolean;
  /** Multiplier applied to routed weights after renormalisation (1 for DeepSeekMoE). */
  routedScalingFactor: number;
  /**
   * Qwen2-MoE: the shared expert's output is scaled by sigmoid(shared_expert_gate . x) per
   * token. False (ungated, unscaled shared experts) for DeepSeek.
   */
  sharedExpertGate?: boolean;
}

export type MlpSpec = DenseMlpSpec | MoeMlpSpec;

export interface ModelSpec {
  /** Hugging Face model_type, e.g. "deepseek". */
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  maxPositions: number;
  rope: RopeSpec;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  /**
   * RMSNorm of the projected queries and keys before RoPE: 'head' normalises each head's
   * headDim values (Qwen3-MoE), 'projection' the whole q (numHeads * headDim) and k
   * (numKvHeads * headDim) projection rows (OLMoE); absent for none (DeepSeekMoE, Mixtral,
   * Qwen2-MoE).
   */
  qkNorm?: 'head' | 'projection';
  /** One entry per decoder layer. */
  mlp: MlpSpec[];
  bosTokenId: number | null;
  eosTokenIds: number[];
}

export function isMoe(mlp: MlpSpec): mlp is MoeMlpSpec {
  return mlp.kind === 'moe';
}
