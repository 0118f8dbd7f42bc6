// Config, YaRN rotary tables and the MoEGate of the DeepSeek-V2/V3 float64 reference
// (mla-reference.ts), from the remote code modeling_deepseek.py of each version.

export interface MlaReferenceConfig {
  modelType: 'deepseek_v2' | 'deepseek_v3';
  hiddenSize: number;
  intermediateSize: number;
  moeIntermediateSize: number;
  numLayers: number;
  numHeads: number;
  vocabSize: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNope: number;
  qkRope: number;
  vHeadDim: number;
  nRoutedExperts: number | null;
  nSharedExperts: number;
  topK: number;
  firstKDenseReplace: number;
  moeLayerFreq: number;
  normTopkProb: boolean;
  routedScalingFactor: number;
  topkMethod: string;
  nGroup: number;
  topkGroup: number;
  ropeTheta: number;
  yarn: { factor: number; originalMax: number; betaFast: number; betaSlow: number; mscale: number; mscaleAllDim: number } | null;
  softmaxScale: number;
}

type Json = Record<string, unknown>;

function num(raw: Json, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number') throw new Error(`config.${key}: expected a number`);
  return v;
}

/** yarn_get_mscale */
function getMscale(scale: number, mscale: number): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

export function parseMlaReferenceConfig(rawConfig: unknown): MlaReferenceConfig {
  const raw = rawConfig as Json;
  const modelType = raw.model_type === 'deepseek_v3' ? 'deepseek_v3' : 'deepseek_v2';
  const v3 = modelType === 'deepseek_v3';
  const rs = raw.rope_scaling as Json | null | undefined;
  const yarn = rs
    ? {
        factor: num(rs, 'factor'),
        originalMax: num(rs, 'original_max_position_embeddings'),
        betaFast: num(rs, 'beta_fast', 32),
        betaSlow: num(rs, 'beta_slow', 1),
        mscale: num(rs, 'mscale', 1),
        mscaleAllDim: num(rs, 'mscale_all_dim', 0),
      }
    : null;
  const qkNope = num(raw, 'qk_nope_head_dim');
  const qkRope = num(raw, 'qk_rope_head_dim');
  let softmaxScale = Math.pow(qkNope + qkRope, -0.5);
  if (yarn && yarn.mscaleAllDim) {
    const m = getMscale(yarn.factor, yarn.mscaleAllDim);
    softmaxScale = softmaxScale * m * m;
  }
  return {
    modelType,
    hiddenSize: num(raw, 'hidden_size'),
    intermediateSize: num(raw, 'intermediate_size'),
    moeIntermediateSize: num(raw, 'moe_intermediate_size'),
    numLayers: num(raw, 'num_hidden_layers'),
    numHeads: num(raw, 'num_attention_heads'),
    vocabSize: num(raw, 'vocab_size'),
    rmsNormEps: num(raw, 'rms_norm_eps', 1e-6),
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    qLoraRank: raw.q_lora_rank === null || raw.q_lora_rank === undefined ? null : num(raw, 'q_lora_rank'),
    kvLoraRank: num(raw, 'kv_lora_rank'),
    qkNope,
    qkRope,
    vHeadDim: num(raw, 'v_head_dim'),
    nRoutedExperts: raw.n_routed_experts === null || raw.n_routed_experts === undefined ? null : num(raw, 'n_routed_experts'),
    nSharedExperts: raw.n_shared_experts === null ? 0 : num(raw, 'n_shared_experts', 0),
    topK: num(raw, 'num_experts_per_tok'),
    firstKDenseReplace: num(raw, 'first_k_dense_replace', 0),
    moeLayerFreq: num(raw, 'moe_layer_freq', 1),
    normTopkProb: (raw.norm_topk_prob ?? v3) === true,
    routedScalingFactor: num(raw, 'routed_scaling_factor', 1),
    topkMethod: String(raw.topk_method ?? (v3 ? 'noaux_tc' : 'greedy')),
    nGroup: num(raw, 'n_group', 1),
    topkGroup: num(raw, 'topk_group', 1),
    ropeTheta: num(raw, 'rope_theta', 10000),
    yarn,
    softmaxScale,
  };
}

/**
 * DeepseekV2YarnRotaryEmbedding's cos/sin (first half; HF repeats them) at `position`:
 * inv_freq blends interpolated and extrapolated frequencies over a linear ramp between the
 * correction dimensions of beta_fast and beta_slow; cos and sin carry mscale / mscale_all_dim.
 */
export function yarnTables(c: MlaReferenceConfig, position: number): { cos: Float64Array; sin: Float64Array } {
  const d = c.qkRope;
  const base = c.ropeTheta;
  const inv = Array.from({ length: d / 2 }, (_, i) => 1 / Math.pow(base, (2 * i) / d));
  let amplitude = 1;
  const y = c.yarn;
  if (y) {
    const dimFor = (rot: number) => (d * Math.log(y.originalMax / (rot * 2 * Math.PI))) / (2 * Math.log(base));
    const low = Math.max(Math.floor(dimFor(y.betaFast)), 0);
    let high = Math.min(Math.ceil(dimFor(y.betaSlow)), d - 1);
    if (low === high) high += 0.001;
    for (let i = 0; i < inv.length; i++) {
      const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
      const extrapolationMask = 1 - ramp;
      inv[i] = (inv[i] / y.factor) * (1 - extrapolationMask) + inv[i] * extrapolationMask;
    }
    amplitude = getMscale(y.factor, y.mscale) / getMscale(y.factor, y.mscaleAllDim);
  }
  return {
    cos: Float64Array.from(inv, (f) => Math.cos(position * f) * amplitude),
    sin: Float64Array.from(inv, (f) => Math.sin(position * f) * amplitude),
  };
}

/** Indices of the k largest values, descending, ties to the lower index. */
function topIndices(values: number[], k: number): number[] {
  return values
    .map((_, i) => i)
    .sort((a, b) => values[b] - values[a] || a - b)
    .slice(0, k);
}

/**
 * MoEGate.forward. V2: softmax; greedy, or group_limited_greedy (group = max score; dropped
 * groups' scores -> 0.0); renormalise if top_k > 1 and norm_topk_prob, ELSE scale. V3: sigmoid;
 * noaux_tc (selection = score + bias; group = sum of its top-2 selection scores; dropped -> 0.0);
 * weights = unbiased scores; renormalise if top_k > 1 and norm_topk_prob; ALWAYS scale.
 */
export function routeDeepseekGate(
  c: MlaReferenceConfig,
  logits: Float64Array,
  bias: Float32Array | null,
): { expertIds: number[]; weights: number[] } {
  const v3 = c.modelType === 'deepseek_v3';
  let scores: number[];
  if (v3) scores = Array.from(logits, (l) => 1 / (1 + Math.exp(-l)));
  else {
    const max = Math.max(...logits);
    const exps = Array.from(logits, (l) => Math.exp(l - max));
    const total = exps.reduce((a, b) => a + b, 0);
    scores = exps.map((e) => e / total);
  }
  let choice = v3 && bias ? scores.map((s, i) => s + bias[i]) : [...scores];
  if (c.topkMethod === 'group_limited_greedy' || c.topkMethod === 'noaux_tc') {
    const size = choice.length / c.nGroup;
    const groupScores = Array.from({ length: c.nGroup }, (_, g) => {
      const members = choice.slice(g * size, (g + 1) * size).sort((a, b) => b - a);
      return v3 ? members[0] + (members[1] ?? 0) : members[0];
    });
    const kept = new Set(topIndices(groupScores, c.topkGroup));
    choice = choice.map((s, i) => (kept.has(Math.floor(i / size)) ? s : 0));
  }
  const expertIds = topIndices(choice, c.topK);
  let weights = expertIds.map((e) => scores[e]);
  const renormalise = c.topK > 1 && c.normTopkProb;
  if (renormalise) {
    const sum = weights.reduce((a, b) => a + b, 0) + 1e-20;
    weights = weights.map((w) => w / sum);
  }
  if (v3 || !renormalise) weights = weights.map((w) => w * c.routedScalingFactor);
  return { expertIds, weights };
}
