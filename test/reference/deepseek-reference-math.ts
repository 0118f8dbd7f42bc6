// Config parsing and the per-vector math of the DeepSeekMoE reference (see deepseek-reference.ts).
// Everything is float64; each function names the piece of HF modeling_deepseek.py it mirrors.

export interface RopeScalingConfig {
  type: 'linear' | 'dynamic';
  factor: number;
}

export interface DeepseekConfig {
  hiddenSize: number;
  intermediateSize: number;
  moeIntermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** null: no MoE layers at all (HF checks `n_routed_experts is not None`). */
  nRoutedExperts: number | null;
  nSharedExperts: number | null;
  numExpertsPerTok: number;
  normTopkProb: boolean;
  firstKDenseReplace: number;
  moeLayerFreq: number;
  ropeTheta: number;
  ropeScaling: RopeScalingConfig | null;
  rmsNormEps: number;
  vocabSize: number;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  attentionBias: boolean;
}

export interface MlpWeights {
  intermediate: number;
  /** [intermediate, hidden] */
  gate: Float32Array;
  /** [intermediate, hidden] */
  up: Float32Array;
  /** [hidden, intermediate] */
  down: Float32Array;
}

type Json = Record<string, unknown>;

function num(raw: Json, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`config.${key}: expected a number`);
  return v;
}

function optionalNum(raw: Json, key: string): number | null {
  return raw[key] === undefined || raw[key] === null ? null : num(raw, key);
}

function bool(raw: Json, key: string, fallback: boolean): boolean {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'boolean') throw new Error(`config.${key}: expected a boolean`);
  return v;
}

function parseRopeScaling(v: unknown): RopeScalingConfig | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') throw new Error('config.rope_scaling: expected an object or null');
  const r = v as Json;
  // The remote code reads rope_scaling["type"]; newer savers also write "rope_type".
  const type = r.type ?? r.rope_type;
  const factor = r.factor;
  if ((type !== 'linear' && type !== 'dynamic') || typeof factor !== 'number') {
    throw new Error(`config.rope_scaling: unsupported ${JSON.stringify(v)}`);
  }
  return { type, factor };
}

/** Reads an HF config.json object; defaults are DeepseekConfig's (configuration_deepseek.py). */
export function parseDeepseekConfig(rawConfig: unknown): DeepseekConfig {
  if (typeof rawConfig !== 'object' || rawConfig === null) throw new Error('config: expected an object');
  const raw = rawConfig as Json;
  if ((raw.hidden_act ?? 'silu') !== 'silu') throw new Error('config.hidden_act: only silu is supported');
  if ((raw.scoring_func ?? 'softmax') !== 'softmax') {
    // HF MoEGate raises NotImplementedError for anything but softmax.
    throw new Error('config.scoring_func: DeepSeekMoE supports only softmax');
  }
  const hiddenSize = num(raw, 'hidden_size');
  const numHeads = num(raw, 'num_attention_heads');
  // HF: head_dim = hidden_size // num_heads, and it must divide exactly.
  if (hiddenSize % numHeads !== 0) throw new Error('config: hidden_size not divisible by heads');
  const numKvHeads = optionalNum(raw, 'num_key_value_heads') ?? numHeads;
  if (numHeads % numKvHeads !== 0) throw new Error('config: heads not divisible by kv heads');
  const nRoutedExperts = optionalNum(raw, 'n_routed_experts');
  return {
    hiddenSize,
    intermediateSize: num(raw, 'intermediate_size'),
    moeIntermediateSize: nRoutedExperts === null ? 0 : num(raw, 'moe_intermediate_size'),
    numLayers: num(raw, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim: hiddenSize / numHeads,
    nRoutedExperts,
    nSharedExperts: optionalNum(raw, 'n_shared_experts'),
    numExpertsPerTok: nRoutedExperts === null ? 0 : num(raw, 'num_experts_per_tok'),
    normTopkProb: bool(raw, 'norm_topk_prob', false),
    firstKDenseReplace: num(raw, 'first_k_dense_replace', 0),
    moeLayerFreq: num(raw, 'moe_layer_freq', 1),
    ropeTheta: num(raw, 'rope_theta', 10000),
    ropeScaling: parseRopeScaling(raw.rope_scaling),
    rmsNormEps: num(raw, 'rms_norm_eps', 1e-6),
    vocabSize: num(raw, 'vocab_size'),
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    maxPositionEmbeddings: num(raw, 'max_position_embeddings', 2048),
    attentionBias: bool(raw, 'attention_bias', false),
  };
}

/** HF DeepseekDecoderLayer: MoE iff n_routed_experts set, i >= first_k_dense_replace, i % freq == 0. */
export function isMoeLayer(cfg: DeepseekConfig, layer: number): boolean {
  return cfg.nRoutedExperts !== null && layer >= cfg.firstKDenseReplace && layer % cfg.moeLayerFreq === 0;
}

/** HF DeepseekRMSNorm: weight * (x * rsqrt(mean(x^2) + eps)). */
export function rmsNorm(x: Float64Array, weight: Float32Array, eps: number): Float64Array {
  let sumSq = 0;
  for (let i = 0; i < x.length; i++) sumSq += x[i] * x[i];
  const inv = 1 / Math.sqrt(sumSq / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = weight[i] * (x[i] * inv);
  return out;
}

/** nn.Linear with weight [outDim, inDim]: y = W x (+ b). */
export function linear(x: Float64Array, w: Float32Array, outDim: number, bias: Float32Array | null): Float64Array {
  const inDim = x.length;
  if (w.length !== outDim * inDim) throw new Error(`linear: weight ${w.length} != ${outDim}x${inDim}`);
  const y = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let acc = bias ? bias[o] : 0;
    const row = o * inDim;
    for (let i = 0; i < inDim; i++) acc += w[row + i] * x[i];
    y[o] = acc;
  }
  return y;
}

/** HF DeepseekMLP (hidden_act silu): down(silu(gate x) * up x). */
export function swiglu(x: Float64Array, w: MlpWeights): Float64Array {
  const g = linear(x, w.gate, w.intermediate, null);
  const u = linear(x, w.up, w.intermediate, null);
  const act = new Float64Array(w.intermediate);
  for (let i = 0; i < act.length; i++) act[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  return linear(act, w.down, x.length, null);
}

/**
 * inv_freq[i] = 1 / base^(2i/d). HF DeepseekDynamicNTKScalingRotaryEmbedding: when the total
 * length (kv_seq_len) exceeds max_position_embeddings, base is replaced by
 * base * (factor * len / max_pos - (factor - 1)) ^ (d / (d - 2)).
 */
export function ropeInvFreq(cfg: DeepseekConfig, totalLen: number): Float64Array {
  const d = cfg.headDim;
  let base = cfg.ropeTheta;
  const s = cfg.ropeScaling;
  if (s?.type === 'dynamic' && totalLen > cfg.maxPositionEmbeddings) {
    const f = s.factor;
    base *= Math.pow((f * totalLen) / cfg.maxPositionEmbeddings - (f - 1), d / (d - 2));
  }
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = 1 / Math.pow(base, (2 * i) / d);
  return inv;
}

/** cos/sin of angle[i] = t * inv_freq[i], i < d/2 (HF duplicates them: emb = cat(freqs, freqs)). */
export interface RopeTable {
  cos: Float64Array;
  sin: Float64Array;
}

/** HF DeepseekLinearScalingRotaryEmbedding divides the position by the factor: t = p / factor. */
export function ropeTable(cfg: DeepseekConfig, invFreq: Float64Array, position: number): RopeTable {
  const t = cfg.ropeScaling?.type === 'linear' ? position / cfg.ropeScaling.factor : position;
  const cos = new Float64Array(invFreq.length);
  const sin = new Float64Array(invFreq.length);
  for (let i = 0; i < invFreq.length; i++) {
    cos[i] = Math.cos(t * invFreq[i]);
    sin[i] = Math.sin(t * invFreq[i]);
  }
  return { cos, sin };
}

/**
 * HF apply_rotary_pos_emb with rotate_half (non-interleaved halves):
 * x' = x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[half:], x[:half]).
 */
export function applyRopeInPlace(v: Float64Array, offset: number, headDim: number, table: RopeTable): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const a = v[offset + i];
    const b = v[offset + half + i];
    v[offset + i] = a * table.cos[i] - b * table.sin[i];
    v[offset + half + i] = b * table.cos[i] + a * table.sin[i];
  }
}

export interface Route {
  /** Chosen experts, descending score; equal scores: lower index first. */
  expertIds: number[];
  /** Routing weight of each chosen expert, same order. */
  weights: number[];
}

/**
 * HF MoEGate (scoring_func softmax): scores = softmax(logits); top-k; when top_k > 1 and
 * norm_topk_prob, weights /= (sum + 1e-20). HF's topk is unsorted; we fix a deterministic order.
 */
export function routeSoftmaxTopK(logits: Float64Array, topK: number, normTopkProb: boolean): Route {
  if (topK < 1 || topK > logits.length) throw new Error(`top-k ${topK} of ${logits.length} experts`);
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  const scores = Array.from(logits, (l) => Math.exp(l - max));
  const total = scores.reduce((a, b) => a + b, 0);
  for (let i = 0; i < scores.length; i++) scores[i] /= total;
  const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  const expertIds = order.slice(0, topK);
  let weights = expertIds.map((e) => scores[e]);
  if (topK > 1 && normTopkProb) {
    const denominator = weights.reduce((a, b) => a + b, 0) + 1e-20;
    weights = weights.map((w) => w / denominator);
  }
  return { expertIds, weights };
}
