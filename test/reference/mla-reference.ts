// Test-only float64 reference for DeepSeek-V2 and DeepSeek-V3 (model_type deepseek_v2 /
// deepseek_v3), following the remote code modeling_deepseek.py of each in its NAIVE form:
// kv_b_proj expands the latent into every head's k_nope and value, and the cache keeps those
// expanded keys and values, as the Hugging Face eager code does. The engine instead caches
// the latent and absorbs kv_b_proj; agreement between the two checks that algebra.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { linear, rmsNorm, swiglu, type MlpWeights } from './deepseek-reference-math.ts';
import type { ReferenceStepResult, WeightGetter } from './deepseek-reference.ts';
import { parseMlaReferenceConfig, routeDeepseekGate, type MlaReferenceConfig, yarnTables } from './mla-reference-math.ts';

interface Attn {
  q: Float32Array | null;
  qA: Float32Array | null;
  qANorm: Float32Array | null;
  qB: Float32Array | null;
  kvA: Float32Array;
  kvANorm: Float32Array;
  kvB: Float32Array;
  o: Float32Array;
}
interface Layer {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  attn: Attn;
  dense: MlpWeights | null;
  moe: { router: Float32Array; bias: Float32Array | null; experts: MlpWeights[]; shared: MlpWeights | null } | null;
}

function mlp(get: WeightGetter, p: string, h: number, inter: number): MlpWeights {
  return {
    intermediate: inter,
    gate: get(`${p}.gate_proj.weight`, [inter, h]),
    up: get(`${p}.up_proj.weight`, [inter, h]),
    down: get(`${p}.down_proj.weight`, [h, inter]),
  };
}

function loadLayer(get: WeightGetter, c: MlaReferenceConfig, i: number): Layer {
  const p = `model.layers.${i}`;
  const a = `${p}.self_attn`;
  const h = c.hiddenSize;
  const qDim = c.numHeads * (c.qkNope + c.qkRope);
  const lora = c.qLoraRank;
  const attn: Attn = {
    q: lora === null ? get(`${a}.q_proj.weight`, [qDim, h]) : null,
    qA: lora === null ? null : get(`${a}.q_a_proj.weight`, [lora, h]),
    qANorm: lora === null ? null : get(`${a}.q_a_layernorm.weight`, [lora]),
    qB: lora === null ? null : get(`${a}.q_b_proj.weight`, [qDim, lora]),
    kvA: get(`${a}.kv_a_proj_with_mqa.weight`, [c.kvLoraRank + c.qkRope, h]),
    kvANorm: get(`${a}.kv_a_layernorm.weight`, [c.kvLoraRank]),
    kvB: get(`${a}.kv_b_proj.weight`, [c.numHeads * (c.qkNope + c.vHeadDim), c.kvLoraRank]),
    o: get(`${a}.o_proj.weight`, [h, c.numHeads * c.vHeadDim]),
  };
  const isMoe = c.nRoutedExperts !== null && i >= c.firstKDenseReplace && i % c.moeLayerFreq === 0;
  const e = c.nRoutedExperts ?? 0;
  return {
    inputNorm: get(`${p}.input_layernorm.weight`, [h]),
    postNorm: get(`${p}.post_attention_layernorm.weight`, [h]),
    attn,
    dense: isMoe ? null : mlp(get, `${p}.mlp`, h, c.intermediateSize),
    moe: isMoe
      ? {
          router: get(`${p}.mlp.gate.weight`, [e, h]),
          bias: c.modelType === 'deepseek_v3' ? get(`${p}.mlp.gate.e_score_correction_bias`, [e]) : null,
          experts: Array.from({ length: e }, (_, j) => mlp(get, `${p}.mlp.experts.${j}`, h, c.moeIntermediateSize)),
          shared: c.nSharedExperts > 0 ? mlp(get, `${p}.mlp.shared_experts`, h, c.moeIntermediateSize * c.nSharedExperts) : null,
        }
      : null,
  };
}

export class ReferenceMla {
  readonly config: MlaReferenceConfig;
  readonly embed: Float32Array;
  readonly finalNorm: Float32Array;
  readonly lmHead: Float32Array;
  readonly layers: Layer[];

  constructor(raw: unknown, get: WeightGetter) {
    const c = parseMlaReferenceConfig(raw);
    this.config = c;
    this.embed = get('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
    this.finalNorm = get('model.norm.weight', [c.hiddenSize]);
    this.lmHead = c.tieWordEmbeddings ? this.embed : get('lm_head.weight', [c.vocabSize, c.hiddenSize]);
    this.layers = Array.from({ length: c.numLayers }, (_, i) => loadLayer(get, c, i));
  }

  static load(dir: string): ReferenceMla {
    const raw: unknown = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const reader = CheckpointReader.open(dir);
    try {
      return new ReferenceMla(raw, (name, shape) => reader.readFloat32(name, shape));
    } finally {
      reader.close();
    }
  }

  newSequence(): ReferenceMlaSequence {
    return new ReferenceMlaSequence(this);
  }
}

/** DeepSeek's RoPE: permute the r values to [evens, odds], then rotate halves with cos/sin. */
function ropeDeepseek(x: Float64Array, offset: number, r: number, cos: Float64Array, sin: Float64Array): void {
  const half = r / 2;
  const permuted = Array.from({ length: r }, (_, i) => (i < half ? x[offset + 2 * i] : x[offset + 2 * (i - half) + 1]));
  for (let i = 0; i < r; i++) {
    const rotated = i < half ? -permuted[i + half] : permuted[i - half];
    x[offset + i] = permuted[i] * cos[i % half] + rotated * sin[i % half];
  }
}

export class ReferenceMlaSequence {
  /** [layer][position]: expanded keys [H * (nope + rope)] and values [H * v], as HF caches them. */
  private readonly keys: Float64Array[][];
  private readonly values: Float64Array[][];

  constructor(private readonly model: ReferenceMla) {
    this.keys = model.layers.map(() => []);
    this.values = model.layers.map(() => []);
  }

  forward(tokenIds: number[]): ReferenceStepResult {
    const { model } = this;
    const c = model.config;
    const past = this.keys[0].length;
    const tables = tokenIds.map((_, t) => yarnTables(c, past + t));
    let hidden: Float64Array[] = tokenIds.map((id) => Float64Array.from(model.embed.subarray(id * c.hiddenSize, (id + 1) * c.hiddenSize)));
    const experts: number[][][] = tokenIds.map(() => []);
    const moeLayers: number[] = [];
    model.layers.forEach((layer, li) => {
      if (layer.moe) moeLayers.push(li);
      const attnOut = hidden.map((x, t) => this.attention(li, layer.attn, rmsNorm(x, layer.inputNorm, c.rmsNormEps), tables[t]));
      // Attention of all new tokens runs before any MLP (causal: token t sees cache up to itself).
      hidden = hidden.map((x, t) => {
        const h = x.map((v, d) => v + attnOut[t][d]);
        const y = this.mlp(layer, rmsNorm(h, layer.postNorm, c.rmsNormEps), experts[t]);
        return h.map((v, d) => v + y[d]);
      });
    });
    const logits = hidden.map((h) => linear(rmsNorm(h, model.finalNorm, c.rmsNormEps), model.lmHead, c.vocabSize, null));
    return { logits, experts, moeLayers };
  }

  private mlp(layer: Layer, x: Float64Array, tokenExperts: number[][]): Float64Array {
    if (layer.dense) return swiglu(x, layer.dense);
    const moe = layer.moe;
    if (!moe) throw new Error('layer without MLP');
    const route = routeDeepseekGate(this.model.config, linear(x, moe.router, moe.experts.length, null), moe.bias);
    tokenExperts.push(route.expertIds);
    const out = new Float64Array(x.length);
    route.expertIds.forEach((e, j) => swiglu(x, moe.experts[e]).forEach((v, d) => (out[d] += route.weights[j] * v)));
    if (moe.shared) swiglu(x, moe.shared).forEach((v, d) => (out[d] += v));
    return out;
  }

  /** One new token's attention (its k/v appended first), HF DeepseekV2Attention eager math. */
  private attention(li: number, w: Attn, x: Float64Array, table: { cos: Float64Array; sin: Float64Array }): Float64Array {
    const c = this.model.config;
    const { numHeads: H, qkNope: n, qkRope: r, vHeadDim: v, kvLoraRank } = c;
    const q = w.q
      ? linear(x, w.q, H * (n + r), null)
      : linear(rmsNorm(linear(x, w.qA!, c.qLoraRank!, null), w.qANorm!, c.rmsNormEps), w.qB!, H * (n + r), null);
    const ckv = linear(x, w.kvA, kvLoraRank + r, null);
    const kv = linear(rmsNorm(ckv.subarray(0, kvLoraRank), w.kvANorm, c.rmsNormEps), w.kvB, H * (n + v), null);
    const kPe = Float64Array.from(ckv.subarray(kvLoraRank));
    ropeDeepseek(kPe, 0, r, table.cos, table.sin);
    const key = new Float64Array(H * (n + r));
    const value = new Float64Array(H * v);
    for (let h = 0; h < H; h++) {
      ropeDeepseek(q, h * (n + r) + n, r, table.cos, table.sin);
      key.set(kv.subarray(h * (n + v), h * (n + v) + n), h * (n + r));
      key.set(kPe, h * (n + r) + n);
      value.set(kv.subarray(h * (n + v) + n, (h + 1) * (n + v)), h * v);
    }
    this.keys[li].push(key);
    this.values[li].push(value);
    const context = new Float64Array(H * v);
    for (let h = 0; h < H; h++) {
      const scores = this.keys[li].map((k) => {
        let dot = 0;
        for (let i = 0; i < n + r; i++) dot += q[h * (n + r) + i] * k[h * (n + r) + i];
        return dot * c.softmaxScale;
      });
      const max = Math.max(...scores);
      const exps = scores.map((s) => Math.exp(s - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      exps.forEach((e, s) => {
        for (let i = 0; i < v; i++) context[h * v + i] += (e / sum) * this.values[li][s][h * v + i];
      });
    }
    return linear(context, w.o, c.hiddenSize, null);
  }
}
