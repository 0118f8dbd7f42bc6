// Config parsing of the float64 reference for the Llama-lineage MoE families (Mixtral,
// Qwen2-MoE, Qwen3-MoE, OLMoE). Written from the Hugging Face transformers configuration_*.py
// and modeling_*.py of each model_type, independently of models/families/ on purpose: it is
// the ground truth the engine's parser and graphs are checked against.

export type ReferenceLayerMlp =
  | { moe: false; intermediate: number }
  | {
      moe: true;
      numExperts: number;
      topK: number;
      intermediate: number;
      /** Renormalise the top-k probabilities (HF: plain w / sum(w), no epsilon). */
      renormalize: boolean;
      /** Shared expert width, 0 when none. */
      sharedWidth: number;
      /** Qwen2-MoE: shared output times sigmoid(shared_expert_gate . x). */
      sharedGated: boolean;
    };

export interface ReferenceConfig {
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** HF "linear" rope scaling: positions divided by this (1 when absent). */
  ropePositionDivisor: number;
  tieWordEmbeddings: boolean;
  qkvBias: boolean;
  qkNorm: 'none' | 'head' | 'projection';
  layers: ReferenceLayerMlp[];
}

type Json = Record<string, unknown>;

function num(raw: Json, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`config.${key}: expected a number`);
  return v;
}

function flag(raw: Json, key: string, fallback: boolean): boolean {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'boolean') throw new Error(`config.${key}: expected a boolean`);
  return v;
}

function ropeDivisor(raw: Json): number {
  const s = raw.rope_scaling as Json | null | undefined;
  if (s === null || s === undefined) return 1;
  const type = s.rope_type ?? s.type;
  if (type !== 'linear') throw new Error(`config.rope_scaling: reference supports linear only`);
  return num(s, 'factor');
}

/** HF Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer sparse rule. */
function qwenLayers(raw: Json, numLayers: number, sharedWidth: number, sharedGated: boolean): ReferenceLayerMlp[] {
  const numExperts = num(raw, 'num_experts', 0);
  const step = num(raw, 'decoder_sparse_step', 1);
  const mlpOnly = (raw.mlp_only_layers as number[] | undefined) ?? [];
  return Array.from({ length: numLayers }, (_, i): ReferenceLayerMlp => {
    if (mlpOnly.includes(i) || numExperts === 0 || (i + 1) % step !== 0) return { moe: false, intermediate: num(raw, 'intermediate_size') };
    return {
      moe: true,
      numExperts,
      topK: num(raw, 'num_experts_per_tok'),
      intermediate: num(raw, 'moe_intermediate_size'),
      renormalize: flag(raw, 'norm_topk_prob', false),
      sharedWidth,
      sharedGated,
    };
  });
}

/** Every layer MoE with experts of intermediate_size (Mixtral, OLMoE). */
function uniformLayers(raw: Json, numLayers: number, numExpertsKey: string, renormalize: boolean): ReferenceLayerMlp[] {
  return Array.from({ length: numLayers }, (): ReferenceLayerMlp => ({
    moe: true,
    numExperts: num(raw, numExpertsKey),
    topK: num(raw, 'num_experts_per_tok'),
    intermediate: num(raw, 'intermediate_size'),
    renormalize,
    sharedWidth: 0,
    sharedGated: false,
  }));
}

export function parseReferenceConfig(rawConfig: unknown): ReferenceConfig {
  const raw = rawConfig as Json;
  const modelType = String(raw.model_type);
  const hiddenSize = num(raw, 'hidden_size');
  const numHeads = num(raw, 'num_attention_heads');
  const numLayers = num(raw, 'num_hidden_layers');
  // Mixtral and Qwen3-MoE read an explicit head_dim; Qwen2-MoE and OLMoE derive it.
  const headDimKey = modelType === 'mixtral' || modelType === 'qwen3_moe';
  const base = {
    modelType,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads: num(raw, 'num_key_value_heads', numHeads),
    headDim: headDimKey && raw.head_dim !== null && raw.head_dim !== undefined ? num(raw, 'head_dim') : hiddenSize / numHeads,
    vocabSize: num(raw, 'vocab_size'),
    rmsNormEps: num(raw, 'rms_norm_eps', modelType === 'mixtral' || modelType === 'olmoe' ? 1e-5 : 1e-6),
    ropeTheta: num(raw, 'rope_theta', modelType === 'mixtral' ? 1e6 : 10000),
    ropePositionDivisor: ropeDivisor(raw),
    tieWordEmbeddings: flag(raw, 'tie_word_embeddings', false),
  };
  switch (modelType) {
    case 'mixtral': // MixtralSparseMoeBlock always renormalises the top-k weights.
      return { ...base, qkvBias: false, qkNorm: 'none', layers: uniformLayers(raw, numLayers, 'num_local_experts', true) };
    case 'olmoe':
      return {
        ...base,
        qkvBias: false,
        qkNorm: 'projection',
        layers: uniformLayers(raw, numLayers, 'num_experts', flag(raw, 'norm_topk_prob', false)),
      };
    case 'qwen2_moe':
      return {
        ...base,
        qkvBias: true,
        qkNorm: 'none',
        layers: qwenLayers(raw, numLayers, num(raw, 'shared_expert_intermediate_size'), true),
      };
    case 'qwen3_moe':
      return { ...base, qkvBias: false, qkNorm: 'head', layers: qwenLayers(raw, numLayers, 0, false) };
    default:
      throw new Error(`reference: unsupported model_type ${modelType}`);
  }
}

/** Tensor names as transformers saves them (per-expert layout). */
export function expertPrefix(cfg: ReferenceConfig, layer: number): string {
  return cfg.modelType === 'mixtral' ? `model.layers.${layer}.block_sparse_moe` : `model.layers.${layer}.mlp`;
}

export function expertProjectionNames(cfg: ReferenceConfig, prefix: string): { gate: string; up: string; down: string } {
  if (cfg.modelType === 'mixtral') return { gate: `${prefix}.w1.weight`, up: `${prefix}.w3.weight`, down: `${prefix}.w2.weight` };
  return { gate: `${prefix}.gate_proj.weight`, up: `${prefix}.up_proj.weight`, down: `${prefix}.down_proj.weight` };
}
