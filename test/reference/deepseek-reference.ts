// Test-only reference forward pass for DeepSeekMoE (HF model_type "deepseek", deepseek-moe-16b).
// Written independently of kernels/ and server/ on purpose: it is the ground truth the ONNX
// Runtime engine is compared against, so it uses naive loops and float64 throughout and follows
// the remote code modeling_deepseek.py shipped with deepseek-ai/deepseek-moe-16b ("HF" below).
// Where HF computes in bf16/fp32 we compute the same formula in float64 on purpose.
// One HF quirk is kept deliberately: with dynamic NTK RoPE past max_position_embeddings, each
// call's base comes from its total length while cached keys keep the rotation they got when
// they were computed, so a long prefill and token-by-token decoding then differ (as in HF).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import {
  type DeepseekConfig,
  type RopeTable,
  applyRopeInPlace,
  isMoeLayer,
  linear,
  parseDeepseekConfig,
  rmsNorm,
  ropeInvFreq,
  ropeTable,
  routeSoftmaxTopK,
  swiglu,
  type MlpWeights,
} from './deepseek-reference-math.ts';

export * from './deepseek-reference-math.ts';

/** Returns a tensor by HF name, converted to f32, after checking it has `expectedShape`. */
export type WeightGetter = (name: string, expectedShape: number[]) => Float32Array;

interface AttentionWeights {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  qBias: Float32Array | null;
  kBias: Float32Array | null;
  vBias: Float32Array | null;
  oBias: Float32Array | null;
}

interface MoeWeights {
  router: Float32Array;
  experts: MlpWeights[];
  shared: MlpWeights | null;
}

interface LayerWeights {
  inputNorm: Float32Array;
  postAttentionNorm: Float32Array;
  attention: AttentionWeights;
  mlp: { kind: 'dense'; dense: MlpWeights } | { kind: 'moe'; moe: MoeWeights };
}

export interface ReferenceStepResult {
  /** One row [vocab] per input token. */
  logits: Float64Array[];
  /** [token][moeLayerOrdinal][k]: chosen expert ids, descending score, ties by lower index. */
  experts: number[][][];
  /** [token][MoE layer][k] the gate weights of those experts (this reference only). */
  gateWeights?: number[][][];
  /** Layer indices that are MoE, in layer order (moeLayerOrdinal indexes this). */
  moeLayers: number[];
}

function loadMlp(get: WeightGetter, prefix: string, hidden: number, inter: number): MlpWeights {
  return {
    intermediate: inter,
    gate: get(`${prefix}.gate_proj.weight`, [inter, hidden]),
    up: get(`${prefix}.up_proj.weight`, [inter, hidden]),
    down: get(`${prefix}.down_proj.weight`, [hidden, inter]),
  };
}

function loadAttention(get: WeightGetter, cfg: DeepseekConfig, prefix: string): AttentionWeights {
  const qDim = cfg.numHeads * cfg.headDim;
  const kvDim = cfg.numKvHeads * cfg.headDim;
  const h = cfg.hiddenSize;
  // HF DeepseekAttention: q/k/v/o are all nn.Linear(..., bias=config.attention_bias), so the
  // output projection carries a bias too when attention_bias is set.
  const bias = (name: string, dim: number): Float32Array | null => (cfg.attentionBias ? get(`${prefix}.${name}.bias`, [dim]) : null);
  return {
    q: get(`${prefix}.q_proj.weight`, [qDim, h]),
    k: get(`${prefix}.k_proj.weight`, [kvDim, h]),
    v: get(`${prefix}.v_proj.weight`, [kvDim, h]),
    o: get(`${prefix}.o_proj.weight`, [h, qDim]),
    qBias: bias('q_proj', qDim),
    kBias: bias('k_proj', kvDim),
    vBias: bias('v_proj', kvDim),
    oBias: bias('o_proj', h),
  };
}

function loadLayer(get: WeightGetter, cfg: DeepseekConfig, i: number): LayerWeights {
  const p = `model.layers.${i}`;
  const h = cfg.hiddenSize;
  let mlp: LayerWeights['mlp'];
  if (isMoeLayer(cfg, i)) {
    const numExperts = cfg.nRoutedExperts ?? 0;
    const experts: MlpWeights[] = [];
    for (let j = 0; j < numExperts; j++) {
      experts.push(loadMlp(get, `${p}.mlp.experts.${j}`, h, cfg.moeIntermediateSize));
    }
    // HF builds shared_experts whenever n_shared_experts is not None, as ONE DeepseekMLP of
    // width moe_intermediate_size * n_shared_experts; a 0 count would add nothing, so skip it.
    const numShared = cfg.nSharedExperts ?? 0;
    const shared = numShared > 0 ? loadMlp(get, `${p}.mlp.shared_experts`, h, cfg.moeIntermediateSize * numShared) : null;
    mlp = {
      kind: 'moe',
      moe: { router: get(`${p}.mlp.gate.weight`, [numExperts, h]), experts, shared },
    };
  } else {
    mlp = { kind: 'dense', dense: loadMlp(get, `${p}.mlp`, h, cfg.intermediateSize) };
  }
  return {
    inputNorm: get(`${p}.input_layernorm.weight`, [h]),
    postAttentionNorm: get(`${p}.post_attention_layernorm.weight`, [h]),
    attention: loadAttention(get, cfg, `${p}.self_attn`),
    mlp,
  };
}

export class ReferenceDeepseek {
  readonly config: DeepseekConfig;
  readonly embed: Float32Array;
  readonly finalNorm: Float32Array;
  readonly lmHead: Float32Array;
  readonly layers: LayerWeights[];
  readonly moeLayers: number[];

  /** Builds from an HF-style config object (config.json contents) and a weight getter. */
  constructor(rawConfig: unknown, get: WeightGetter) {
    const cfg = parseDeepseekConfig(rawConfig);
    this.config = cfg;
    const vocabShape = [cfg.vocabSize, cfg.hiddenSize];
    this.embed = get('model.embed_tokens.weight', vocabShape);
    this.finalNorm = get('model.norm.weight', [cfg.hiddenSize]);
    // HF ties lm_head to embed_tokens when tie_word_embeddings (default false for deepseek).
    this.lmHead = cfg.tieWordEmbeddings ? this.embed : get('lm_head.weight', vocabShape);
    this.layers = [];
    this.moeLayers = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      this.layers.push(loadLayer(get, cfg, i));
      if (isMoeLayer(cfg, i)) this.moeLayers.push(i);
    }
  }

  /** Loads an HF-format checkpoint directory (config.json + safetensors). */
  static load(dir: string): ReferenceDeepseek {
    const rawConfig: unknown = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const reader = CheckpointReader.open(dir);
    try {
      return new ReferenceDeepseek(rawConfig, (name, shape) => reader.readFloat32(name, shape));
    } finally {
      reader.close();
    }
  }

  newSequence(): ReferenceSequence {
    return new ReferenceSequence(this);
  }
}

/** One sequence with its own KV cache; keys are cached after RoPE, as HF's DynamicCache does. */
export class ReferenceSequence {
  private readonly model: ReferenceDeepseek;
  /** [layer][position] rotated keys / values, each [numKvHeads * headDim]. */
  private readonly keys: Float64Array[][];
  private readonly values: Float64Array[][];

  constructor(model: ReferenceDeepseek) {
    this.model = model;
    this.keys = model.layers.map(() => []);
    this.values = model.layers.map(() => []);
  }

  get numCachedTokens(): number {
    return this.keys.length > 0 ? this.keys[0].length : 0;
  }

  /** Runs `tokenIds` at the next positions with causal attention, appending to the cache. */
  forward(tokenIds: number[]): ReferenceStepResult {
    const { model } = this;
    const cfg = model.config;
    const past = this.numCachedTokens;
    // HF recomputes the rotary table for kv_seq_len = past + q_len on every call (the cache is
    // empty at first and the length only grows), so dynamic NTK uses this call's total length.
    const invFreq = ropeInvFreq(cfg, past + tokenIds.length);
    const tables = tokenIds.map((_, t) => ropeTable(cfg, invFreq, past + t));
    let hidden = tokenIds.map((id) => this.embedRow(id));
    const experts: number[][][] = tokenIds.map(() => []);
    const gateWeights: number[][][] = tokenIds.map(() => []);
    model.layers.forEach((layer, li) => {
      hidden = this.decoderLayer(li, layer, hidden, tables, experts, gateWeights);
    });
    const logits = hidden.map((h) => {
      const normed = rmsNorm(h, model.finalNorm, cfg.rmsNormEps);
      return linear(normed, model.lmHead, cfg.vocabSize, null);
    });
    return { logits, experts, gateWeights, moeLayers: [...model.moeLayers] };
  }

  private embedRow(id: number): Float64Array {
    const { vocabSize, hiddenSize } = this.model.config;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`token id ${id} outside vocabulary of ${vocabSize}`);
    }
    return Float64Array.from(this.model.embed.subarray(id * hiddenSize, (id + 1) * hiddenSize));
  }

  // HF DeepseekDecoderLayer: h = x + attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
  private decoderLayer(
    li: number,
    layer: LayerWeights,
    hidden: Float64Array[],
    tables: RopeTable[],
    experts: number[][][],
    gateWeights: number[][][],
  ): Float64Array[] {
    const eps = this.model.config.rmsNormEps;
    const attnIn = hidden.map((x) => rmsNorm(x, layer.inputNorm, eps));
    const attnOut = this.attention(li, layer.attention, attnIn, tables);
    const afterAttn = hidden.map((x, t) => addVectors(x, attnOut[t]));
    return afterAttn.map((x, t) => {
      const mlpIn = rmsNorm(x, layer.postAttentionNorm, eps);
      return addVectors(x, this.mlp(layer, mlpIn, experts[t], gateWeights[t]));
    });
  }

  private mlp(layer: LayerWeights, x: Float64Array, tokenExperts: number[][], tokenWeights: number[][]): Float64Array {
    if (layer.mlp.kind === 'dense') return swiglu(x, layer.mlp.dense);
    const { moe } = layer.mlp;
    const cfg = this.model.config;
    // HF MoEGate: logits = W_gate h, softmax, top-k, optional renormalisation.
    const gateLogits = linear(x, moe.router, moe.experts.length, null);
    const route = routeSoftmaxTopK(gateLogits, cfg.numExpertsPerTok, cfg.normTopkProb);
    tokenExperts.push(route.expertIds);
    tokenWeights.push([...route.weights]);
    // HF moe_infer: sum of weight * expert(h) over the chosen experts, then + shared_experts(h)
    // added without any gate or scale.
    const out = new Float64Array(cfg.hiddenSize);
    route.expertIds.forEach((e, j) => {
      const y = swiglu(x, moe.experts[e]);
      for (let d = 0; d < out.length; d++) out[d] += route.weights[j] * y[d];
    });
    if (moe.shared) {
      const y = swiglu(x, moe.shared);
      for (let d = 0; d < out.length; d++) out[d] += y[d];
    }
    return out;
  }

  // HF DeepseekAttention (eager): RoPE on q and k, cache update, repeat_kv for GQA, softmax of
  // q.k / sqrt(head_dim) with a causal mask, weighted sum of v, o_proj.
  private attention(li: number, w: AttentionWeights, xs: Float64Array[], tables: RopeTable[]): Float64Array[] {
    const cfg = this.model.config;
    const { numHeads, numKvHeads, headDim } = cfg;
    const qs = xs.map((x, t) => {
      const q = linear(x, w.q, numHeads * headDim, w.qBias);
      for (let hd = 0; hd < numHeads; hd++) applyRopeInPlace(q, hd * headDim, headDim, tables[t]);
      const k = linear(x, w.k, numKvHeads * headDim, w.kBias);
      for (let hd = 0; hd < numKvHeads; hd++) applyRopeInPlace(k, hd * headDim, headDim, tables[t]);
      this.keys[li].push(k);
      this.values[li].push(linear(x, w.v, numKvHeads * headDim, w.vBias));
      return q;
    });
    const past = this.keys[li].length - xs.length;
    return qs.map((q, t) => {
      const context = this.attendOne(li, q, past + t);
      return linear(context, w.o, cfg.hiddenSize, w.oBias);
    });
  }

  /** Attention of one query (at absolute `position`) over cached positions 0..position. */
  private attendOne(li: number, q: Float64Array, position: number): Float64Array {
    const { numHeads, numKvHeads, headDim } = this.model.config;
    // repeat_kv: query head h reads kv head floor(h / (numHeads / numKvHeads)).
    const groupSize = numHeads / numKvHeads;
    const scale = 1 / Math.sqrt(headDim);
    const keys = this.keys[li];
    const values = this.values[li];
    const context = new Float64Array(numHeads * headDim);
    const scores = new Float64Array(position + 1);
    for (let h = 0; h < numHeads; h++) {
      const kvOff = Math.floor(h / groupSize) * headDim;
      const qOff = h * headDim;
      let max = -Infinity;
      for (let s = 0; s <= position; s++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qOff + d] * keys[s][kvOff + d];
        scores[s] = dot * scale;
        if (scores[s] > max) max = scores[s];
      }
      let sum = 0;
      for (let s = 0; s <= position; s++) {
        scores[s] = Math.exp(scores[s] - max);
        sum += scores[s];
      }
      for (let s = 0; s <= position; s++) {
        const p = scores[s] / sum;
        for (let d = 0; d < headDim; d++) context[qOff + d] += p * values[s][kvOff + d];
      }
    }
    return context;
  }
}

function addVectors(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}
