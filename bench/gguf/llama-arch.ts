// Which llama.cpp architecture runs a moe-server model, and the GGUF metadata that describes
// it, with every place llama.cpp's graph would compute something else refused up front (a
// benchmark on a silently different model would compare nothing). The keys and rules follow
// llama.cpp's loader (src/llama-model.cpp) and graphs (src/models/*.cpp) for each architecture.
import type { ModelSpec, MoeMlpSpec } from '../../models/spec.ts';
import { isMoe } from '../../models/spec.ts';
import type { GgufMetadata } from './gguf-format.ts';

export interface LlamaArch {
  /** general.architecture */
  name: string;
  /**
   * 'norm': llama.cpp rotates adjacent pairs (2i, 2i+1), so the q/k rows are permuted from
   * Hugging Face's rotate-half layout (as convert_hf_to_gguf.py does); 'neox': HF's layout as is.
   */
  rope: 'norm' | 'neox';
  /** Number of leading dense layers (deepseek); 0 otherwise. */
  leadingDense: number;
}

export class UnsupportedForLlamaCpp extends Error {}

const fail = (why: string): never => {
  throw new UnsupportedForLlamaCpp(why);
};

function moeLayers(spec: ModelSpec): MoeMlpSpec[] {
  return spec.mlp.filter(isMoe);
}

/** The one MoE shape every MoE layer shares (llama.cpp keeps one set of expert hparams). */
function commonMoe(spec: ModelSpec): MoeMlpSpec {
  const layers = moeLayers(spec);
  if (layers.length === 0) fail('the model has no MoE layer');
  const first = layers[0];
  const same = (m: MoeMlpSpec): boolean => JSON.stringify(m) === JSON.stringify(first);
  if (!layers.every(same)) fail('MoE layers of different shapes cannot be written as one llama.cpp expert configuration');
  if (first.scoringFunc !== 'softmax' || first.grouping || first.correctionBias) fail('only softmax top-k routing without groups or bias');
  return first;
}

/** Checks the model against what llama.cpp can express and names its architecture. */
export function llamaArchFor(spec: ModelSpec): LlamaArch {
  if (spec.mla) fail('MLA models (DeepSeek-V2/V3) are not written by this tool');
  if (spec.rope.scaling !== null) fail(`rope scaling (${spec.rope.scaling.type}) is not written by this tool`);
  if (spec.rope.rotaryDim !== spec.headDim) fail('partial rotary embeddings are not written by this tool');
  const moe = commonMoe(spec);
  switch (spec.modelType) {
    case 'deepseek': {
      // llama.cpp's deepseek graph never renormalises the chosen weights (norm_w false).
      if (moe.normTopkProb) fail('deepseek with norm_topk_prob=true: llama.cpp\'s "deepseek" graph does not renormalise');
      if (moe.sharedIntermediateSize === 0) fail('deepseek without shared experts: llama.cpp\'s "deepseek" graph requires them');
      if (moe.sharedIntermediateSize % moe.expertIntermediateSize !== 0)
        fail('deepseek: the shared width is not a whole number of experts');
      const leadingDense = spec.mlp.findIndex(isMoe);
      if (spec.mlp.slice(leadingDense).some((m) => !isMoe(m))) fail('dense layers after the first MoE layer (moe_layer_freq > 1)');
      return { name: 'deepseek', rope: 'norm', leadingDense };
    }
    case 'olmoe':
      if (moe.normTopkProb) fail('olmoe with norm_topk_prob=true: llama.cpp\'s "olmoe" graph does not renormalise');
      if (spec.numKvHeads !== spec.numHeads) fail('olmoe with kv heads != heads: llama.cpp sizes attn_k_norm by n_embd');
      return { name: 'olmoe', rope: 'neox', leadingDense: 0 };
    case 'mixtral':
      // llama.cpp runs Mixtral as "llama" with experts; it always renormalises, as Mixtral does.
      return { name: 'llama', rope: 'norm', leadingDense: 0 };
    default:
      return fail(`model_type "${spec.modelType}" is not written by this tool (deepseek, olmoe and mixtral are)`);
  }
}

/** general.file_type: llama_ftype ALL_F32 or MOSTLY_Q4_0. */
const FILE_TYPE = { f32: 0, q4_0: 2 } as const;

export function modelMetadata(spec: ModelSpec, arch: LlamaArch, weights: 'f32' | 'q4_0', name: string): GgufMetadata {
  const moe = commonMoe(spec);
  const a = arch.name;
  const u32 = (value: number) => ({ type: 'u32' as const, value });
  const f32 = (value: number) => ({ type: 'f32' as const, value });
  const dense = spec.mlp.find((m) => m.kind === 'dense');
  const md: GgufMetadata = [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: name }],
    ['general.file_type', u32(FILE_TYPE[weights])],
    ['general.alignment', u32(32)],
    [`${a}.vocab_size`, u32(spec.vocabSize)],
    [`${a}.context_length`, u32(spec.maxPositions)],
    [`${a}.embedding_length`, u32(spec.hiddenSize)],
    [`${a}.block_count`, u32(spec.numLayers)],
    // deepseek: the dense layers' width; the others: the expert width (their n_ff).
    [`${a}.feed_forward_length`, u32(dense?.kind === 'dense' ? dense.intermediateSize : moe.expertIntermediateSize)],
    [`${a}.attention.head_count`, u32(spec.numHeads)],
    [`${a}.attention.head_count_kv`, u32(spec.numKvHeads)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(spec.rmsNormEps)],
    [`${a}.rope.freq_base`, f32(spec.rope.theta)],
    [`${a}.rope.dimension_count`, u32(spec.rope.rotaryDim)],
    [`${a}.expert_count`, u32(moe.numRoutedExperts)],
    [`${a}.expert_used_count`, u32(moe.numExpertsPerToken)],
  ];
  if (a === 'deepseek') {
    md.push(
      [`${a}.leading_dense_block_count`, u32(arch.leadingDense)],
      [`${a}.expert_feed_forward_length`, u32(moe.expertIntermediateSize)],
      [`${a}.expert_shared_count`, u32(moe.sharedIntermediateSize / moe.expertIntermediateSize)],
      [`${a}.expert_weights_scale`, f32(moe.routedScalingFactor)],
    );
  }
  return md;
}
