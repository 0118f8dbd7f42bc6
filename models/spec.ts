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
  { type: 'linear'; factor: number } | { type: 'dynamic'; factor: number; originalMaxPositions: number } | YarnRopeScaling;

/** DeepSeek-V2/V3's YaRN (DeepseekV2YarnRotaryEmbedding): blended frequencies, scaled cos/sin. */
export interface YarnRopeScaling {
  type: 'yarn';
  factor: number;
  originalMaxPositions: number;
  betaFast: number;
  betaSlow: number;
  mscale: number;
  mscaleAllDim: number;
}

/**
 * Multi-head Latent Attention (DeepSeek-V2/V3). The cache holds, per token and layer, the
 * normalised latent (kvLoraRank) and the rotated shared key part (qkRopeHeadDim); attention
 * runs in the absorbed form (kv_b_proj's key half folded into the query, its value half
 * applied to the attended latent).
 */
export interface MlaSpec {
  kvLoraRank: number;
  /** null: q_proj straight from the hidden state (V2-Lite); else q_a_proj -> norm -> q_b_proj. */
  qLoraRank: number | null;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  /** (qkNope + qkRope)^-0.5, times YaRN's mscale(factor, mscale_all_dim)^2 when that applies. */
  softmaxScale: number;
}

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
  /** Group-limited selection (DeepSeek-V2 group_limited_greedy, V3 noaux_tc); absent: none. */
  grouping?: { numGroups: number; topkGroups: number; groupScore: 'max' | 'top2-sum' };
  /** DeepSeek-V3: a per-expert e_score_correction_bias is added to the scores for selection only. */
  correctionBias?: boolean;
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
  /**
   * Present for Multi-head Latent Attention; numHeads then counts query heads, headDim is
   * qkNope + qkRope and rope.rotaryDim is qkRope.
   */
  mla?: MlaSpec;
  /**
   * Decoder layers a checkpoint saves after the numLayers used ones that inference ignores, as
   * Hugging Face does on load: DeepSeek-V3's multi-token-prediction module
   * (num_nextn_predict_layers, saved as model.layers.{numLayers}.*). Absent: none.
   */
  unusedTrailingLayers?: number;
  /** One entry per decoder layer. */
  mlp: MlpSpec[];
  bosTokenId: number | null;
  eosTokenIds: number[];
}

export function isMoe(mlp: MlpSpec): mlp is MoeMlpSpec {
  return mlp.kind === 'moe';
}
