// Test-only float64 reference forward pass for Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE,
// following Hugging Face transformers' modeling_*.py for each model_type (eager attention,
// DynamicCache). Naive loops, float64 everywhere; independent of kernels/ and server/.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointReader } from '../../models/checkpoint/safetensors.ts';
import { applyRopeInPlace, linear, rmsNorm, swiglu, type MlpWeights, type RopeTable } from './deepseek-reference-math.ts';
import type { ReferenceStepResult, WeightGetter } from './deepseek-reference.ts';
import { expertPrefix, expertProjectionNames, parseReferenceConfig, type ReferenceConfig } from './moe-reference-config.ts';

interface AttentionWeights {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  qBias: Float32Array | null;
  kBias: Float32Array | null;
  vBias: Float32Array | null;
  qNorm: Float32Array | null;
  kNorm: Float32Array | null;
}

interface MoeWeights {
  router: Float32Array;
  experts: MlpWeights[];
  shared: MlpWeights | null;
  sharedGate: Float32Array | null;
}

interface LayerWeights {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  attention: AttentionWeights;
  mlp: { kind: 'dense'; dense: MlpWeights } | { kind: 'moe'; moe: MoeWeights };
}

function loadMlp(get: WeightGetter, names: { gate: string; up: string; down: string }, hidden: number, inter: number): MlpWeights {
  return {
    intermediate: inter,
    gate: get(names.gate, [inter, hidden]),
    up: get(names.up, [inter, hidden]),
    down: get(names.down, [hidden, inter]),
  };
}

const projNames = (p: string) => ({ gate: `${p}.gate_proj.weight`, up: `${p}.up_proj.weight`, down: `${p}.down_proj.weight` });

function loadAttention(get: WeightGetter, cfg: ReferenceConfig, p: string): AttentionWeights {
  const h = cfg.hiddenSize;
  const qDim = cfg.numHeads * cfg.headDim;
  const kvDim = cfg.numKvHeads * cfg.headDim;
  const bias = (name: string, dim: number) => (cfg.qkvBias ? get(`${p}.${name}.bias`, [dim]) : null);
  // Qwen3MoeAttention: RMSNorm(head_dim); OlmoeAttention: RMSNorm over the whole q / k width.
  const norm = (name: string, dim: number) =>
    cfg.qkNorm === 'none' ? null : get(`${p}.${name}.weight`, [cfg.qkNorm === 'head' ? cfg.headDim : dim]);
  return {
    q: get(`${p}.q_proj.weight`, [qDim, h]),
    k: get(`${p}.k_proj.weight`, [kvDim, h]),
    v: get(`${p}.v_proj.weight`, [kvDim, h]),
    o: get(`${p}.o_proj.weight`, [h, qDim]),
    qBias: bias('q_proj', qDim),
    kBias: bias('k_proj', kvDim),
    vBias: bias('v_proj', kvDim),
    qNorm: norm('q_norm', qDim),
    kNorm: norm('k_norm', kvDim),
  };
}

function loadLayer(get: WeightGetter, cfg: ReferenceConfig, i: number): LayerWeights {
  const h = cfg.hiddenSize;
  const spec = cfg.layers[i];
  let mlp: LayerWeights['mlp'];
  if (spec.moe) {
    const p = expertPrefix(cfg, i);
    const experts = Array.from({ length: spec.numExperts }, (_, j) =>
      loadMlp(get, expertProjectionNames(cfg, `${p}.experts.${j}`), h, spec.intermediate),
    );
    const shared = spec.sharedWidth > 0 ? loadMlp(get, projNames(`${p}.shared_expert`), h, spec.sharedWidth) : null;
    const sharedGate = spec.sharedGated ? get(`${p}.shared_expert_gate.weight`, [1, h]) : null;
    mlp = { kind: 'moe', moe: { router: get(`${p}.gate.weight`, [spec.numExperts, h]), experts, shared, sharedGate } };
  } else {
    mlp = { kind: 'dense', dense: loadMlp(get, projNames(`model.layers.${i}.mlp`), h, spec.intermediate) };
  }
  return {
    inputNorm: get(`model.layers.${i}.input_layernorm.weight`, [h]),
    postNorm: get(`model.layers.${i}.post_attention_layernorm.weight`, [h]),
    attention: loadAttention(get, cfg, `model.layers.${i}.self_attn`),
    mlp,
  };
}

export class ReferenceMoe {
  readonly config: ReferenceConfig;
  readonly embed: Float32Array;
  readonly finalNorm: Float32Array;
  readonly lmHead: Float32Array;
  readonly layers: LayerWeights[];

  constructor(rawConfig: unknown, get: WeightGetter) {
    const cfg = parseReferenceConfig(rawConfig);
    this.config = cfg;
    this.embed = get('model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]);
    this.finalNorm = get('model.norm.weight', [cfg.hiddenSize]);
    this.lmHead = cfg.tieWordEmbeddings ? this.embed : get('lm_head.weight', [cfg.vocabSize, cfg.hiddenSize]);
    this.layers = cfg.layers.map((_, i) => loadLayer(get, cfg, i));
  }

  static load(dir: string): ReferenceMoe {
    const raw: unknown = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const reader = CheckpointReader.open(dir);
    try {
      return new ReferenceMoe(raw, (name, shape) => reader.readFloat32(name, shape));
    } finally {
      reader.close();
    }
  }

  get moeLayers(): number[] {
    return this.config.layers.flatMap((l, i) => (l.moe ? [i] : []));
  }

  newSequence(): ReferenceMoeSequence {
    return new ReferenceMoeSequence(this);
  }
}

/** Softmax over the router logits, top-k (descending, ties to the lower index), optional renorm. */
export function routeSoftmax(logits: Float64Array, topK: number, renormalize: boolean): { expertIds: number[]; weights: number[] } {
  const max = Math.max(...logits);
  const exps = Array.from(logits, (l) => Math.exp(l - max));
  const total = exps.reduce((a, b) => a + b, 0);
  const probs = exps.map((e) => e / total);
  const expertIds = probs
    .map((_, i) => i)
    .sort((a, b) => probs[b] - probs[a] || a - b)
    .slice(0, topK);
  let weights = expertIds.map((e) => probs[e]);
  if (renormalize) {
    const sum = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((w) => w / sum);
  }
  return { expertIds, weights };
}

export class ReferenceMoeSequence {
  private readonly keys: Float64Array[][];
  private readonly values: Float64Array[][];

  constructor(private readonly model: ReferenceMoe) {
    this.keys = model.layers.map(() => []);
    this.values = model.layers.map(() => []);
  }

  forward(tokenIds: number[]): ReferenceStepResult {
    const { model } = this;
    const cfg = model.config;
    const past = this.keys[0].length;
    const tables = tokenIds.map((_, t) => this.ropeTable(past + t));
    let hidden: Float64Array[] = tokenIds.map((id) =>
      Float64Array.from(model.embed.subarray(id * cfg.hiddenSize, (id + 1) * cfg.hiddenSize)),
    );
    const experts: number[][][] = tokenIds.map(() => []);
    model.layers.forEach((layer, li) => {
      const attnIn = hidden.map((x) => rmsNorm(x, layer.inputNorm, cfg.rmsNormEps));
      const attnOut = this.attention(li, layer.attention, attnIn, tables);
      hidden = hidden.map((x, t) => {
        const h = add(x, attnOut[t]);
        return add(h, this.mlp(li, layer, rmsNorm(h, layer.postNorm, cfg.rmsNormEps), experts[t]));
      });
    });
    const logits = hidden.map((h) => linear(rmsNorm(h, model.finalNorm, cfg.rmsNormEps), model.lmHead, cfg.vocabSize, null));
    return { logits, experts, moeLayers: model.moeLayers };
  }

  /** HF default RoPE: inv_freq[i] = theta^(-2i/d); "linear" scaling divides the position. */
  private ropeTable(position: number): RopeTable {
    const { headDim: d, ropeTheta, ropePositionDivisor } = this.model.config;
    const t = position / ropePositionDivisor;
    const angles = Array.from({ length: d / 2 }, (_, i) => t / Math.pow(ropeTheta, (2 * i) / d));
    return { cos: Float64Array.from(angles, Math.cos), sin: Float64Array.from(angles, Math.sin) };
  }

  private mlp(li: number, layer: LayerWeights, x: Float64Array, tokenExperts: number[][]): Float64Array {
    if (layer.mlp.kind === 'dense') return swiglu(x, layer.mlp.dense);
    const spec = this.model.config.layers[li];
    if (!spec.moe) throw new Error('layer kind mismatch');
    const { moe } = layer.mlp;
    const route = routeSoftmax(linear(x, moe.router, spec.numExperts, null), spec.topK, spec.renormalize);
    tokenExperts.push(route.expertIds);
    const out = new Float64Array(x.length);
    route.expertIds.forEach((e, j) => {
      const y = swiglu(x, moe.experts[e]);
      for (let d = 0; d < out.length; d++) out[d] += route.weights[j] * y[d];
    });
    if (moe.shared) {
      const y = swiglu(x, moe.shared);
      const scale = moe.sharedGate ? 1 / (1 + Math.exp(-linear(x, moe.sharedGate, 1, null)[0])) : 1;
      for (let d = 0; d < out.length; d++) out[d] += scale * y[d];
    }
    return out;
  }

  private project(
    x: Float64Array,
    w: Float32Array,
    bias: Float32Array | null,
    norm: Float32Array | null,
    numHeads: number,
    table: RopeTable,
  ): Float64Array {
    const { headDim: d, qkNorm, rmsNormEps } = this.model.config;
    let y = linear(x, w, numHeads * d, bias);
    if (norm && qkNorm === 'projection') y = rmsNorm(y, norm, rmsNormEps);
    if (norm && qkNorm === 'head') {
      for (let h = 0; h < numHeads; h++) y.set(rmsNorm(y.subarray(h * d, (h + 1) * d), norm, rmsNormEps), h * d);
    }
    for (let h = 0; h < numHeads; h++) applyRopeInPlace(y, h * d, d, table);
    return y;
  }

  private attention(li: number, w: AttentionWeights, xs: Float64Array[], tables: RopeTable[]): Float64Array[] {
    const cfg = this.model.config;
    const { numHeads, numKvHeads, headDim: d } = cfg;
    const qs = xs.map((x, t) => {
      this.keys[li].push(this.project(x, w.k, w.kBias, w.kNorm, numKvHeads, tables[t]));
      this.values[li].push(linear(x, w.v, numKvHeads * d, w.vBias));
      return this.project(x, w.q, w.qBias, w.qNorm, numHeads, tables[t]);
    });
    const past = this.keys[li].length - xs.length;
    const group = numHeads / numKvHeads;
    return qs.map((q, t) => {
      const context = new Float64Array(numHeads * d);
      for (let h = 0; h < numHeads; h++) {
        const kv = Math.floor(h / group) * d;
        const scores = this.keys[li].slice(0, past + t + 1).map((k) => {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += q[h * d + i] * k[kv + i];
          return dot / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const sum = exps.reduce((a, b) => a + b, 0);
        exps.forEach((e, s) => {
          for (let i = 0; i < d; i++) context[h * d + i] += (e / sum) * this.values[li][s][kv + i];
        });
      }
      return linear(context, w.o, cfg.hiddenSize, null);
    });
  }
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}
