// The contract every model family implements: parse config.json into a ModelSpec and name
// the checkpoint tensors that hold each weight. Linear weights are named as Hugging Face
// stores them, [out_features, in_features].
import type { ModelSpec } from './spec.ts';

/** Names of one SwiGLU MLP's projections. */
export interface SwigluWeightNames {
  gate: string;
  up: string;
  down: string;
}

export interface AttentionWeightNames {
  q: string;
  k: string;
  v: string;
  o: string;
  /** Present only when the family has q/k/v biases. */
  qBias?: string;
  kBias?: string;
  vBias?: string;
  /** RMSNorm weights of q and k, present when the spec has qkNorm. */
  qNorm?: string;
  kNorm?: string;
}

/** DeepSeek-V2/V3 Multi-head Latent Attention projections (HF DeepseekV2Attention). */
export interface MlaWeightNames {
  kind: 'mla';
  /** q_proj when q_lora_rank is null; else q_a_proj, q_a_layernorm and q_b_proj. */
  q?: string;
  qA?: string;
  qANorm?: string;
  qB?: string;
  /** kv_a_proj_with_mqa [kvLoraRank + qkRope, hidden], kv_a_layernorm [kvLoraRank], kv_b_proj [H * (qkNope + v), kvLoraRank]. */
  kvA: string;
  kvANorm: string;
  kvB: string;
  o: string;
}

/**
 * The 3-D tensors newer transformers releases save a layer's experts in, instead of one 2-D
 * tensor per expert and projection: gate_up [E, 2 * I, H] (gate rows first, then up rows, as
 * the HF experts module chunks its output in two) and down [E, H, I].
 */
export interface FusedExpertNames {
  gateUp: string;
  down: string;
}

export type MlpWeightNames =
  | { kind: 'dense'; mlp: SwigluWeightNames }
  | {
      kind: 'moe';
      /** Router weight, [numRoutedExperts, hiddenSize]. */
      router: string;
      experts: SwigluWeightNames[];
      /** The fused shared-expert MLP; absent when the model has none. */
      shared?: SwigluWeightNames;
      /** Qwen2-MoE's shared_expert_gate weight [1, hidden]; present when the spec has sharedExpertGate. */
      sharedGate?: string;
      /**
       * Where the experts are found when the checkpoint stores them fused (3-D); the per-expert
       * names in `experts` are then read as slices of these. Absent for families that never do.
       */
      fusedExperts?: FusedExpertNames;
      /** DeepSeek-V3's gate.e_score_correction_bias [numRoutedExperts]. */
      correctionBias?: string;
    };

export interface LayerWeightNames {
  inputNorm: string;
  postAttentionNorm: string;
  attention: AttentionWeightNames | MlaWeightNames;
  mlp: MlpWeightNames;
}

export interface ModelWeightNames {
  embedTokens: string;
  finalNorm: string;
  /** Equal to embedTokens when the model ties its word embeddings. */
  lmHead: string;
  layers: LayerWeightNames[];
}

export interface FamilyDefinition {
  /** Hugging Face model_type this definition serves. */
  modelType: string;
  /**
   * Validates config.json and returns the engine's view of the model. Throws ConfigError
   * naming the key and the file for a missing key, a wrong type or an unsupported value.
   */
  parseConfig(config: Record<string, unknown>, file: string): ModelSpec;
  weightNames(spec: ModelSpec): ModelWeightNames;
  /**
   * Other spellings of tensor-name parts that some releases save, as [ours, theirs]: a
   * name missing from the checkpoint is looked up with `ours` replaced by `theirs` (e.g.
   * Mixtral's `.block_sparse_moe.` that newer transformers saves as `.mlp.`).
   */
  checkpointRenames?: ReadonlyArray<readonly [string, string]>;
}

export function isMlaNames(names: AttentionWeightNames | MlaWeightNames): names is MlaWeightNames {
  return 'kind' in names && names.kind === 'mla';
}
