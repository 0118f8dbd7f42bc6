// Self-test of the DeepSeekMoE reference on hand-built micro weights: invariants that would catch
// mistakes in caching, attention, routing and RoPE before the reference is trusted as ground truth.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeSyntheticCheckpoint } from '../../models/synthetic.ts';
import {
  ReferenceDeepseek,
  applyRopeInPlace,
  parseDeepseekConfig,
  ropeInvFreq,
  ropeTable,
  routeSoftmaxTopK,
  type WeightGetter,
} from './deepseek-reference.ts';

type RawConfig = Record<string, unknown>;

/** mulberry32: a tiny seeded PRNG so micro weights are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A getter over a map that checks shapes like the real loader and fails on unknown names. */
function mapGetter(weights: Map<string, Float32Array>, shapes: Map<string, number[]>): WeightGetter {
  return (name, expectedShape) => {
    const w = weights.get(name);
    if (!w) throw new Error(`missing weight ${name}`);
    expect(shapes.get(name), name).toEqual(expectedShape);
    return w;
  };
}

/** Random weights (uniform in [-scale, scale]) for every tensor the config needs; norms near 1. */
function randomGetter(raw: RawConfig, seed: number): WeightGetter {
  const cfg = parseDeepseekConfig(raw);
  const next = rng(seed);
  const weights = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const add = (name: string, shape: number[], scale: number, centre = 0): void => {
    const w = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < w.length; i++) w[i] = centre + (2 * next() - 1) * scale;
    weights.set(name, w);
    shapes.set(name, shape);
  };
  const h = cfg.hiddenSize;
  const mlp = (p: string, inter: number): void => {
    add(`${p}.gate_proj.weight`, [inter, h], 0.5);
    add(`${p}.up_proj.weight`, [inter, h], 0.5);
    add(`${p}.down_proj.weight`, [h, inter], 0.5);
  };
  add('model.embed_tokens.weight', [cfg.vocabSize, h], 1);
  add('model.norm.weight', [h], 0.1, 1);
  add('lm_head.weight', [cfg.vocabSize, h], 0.5);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [h], 0.1, 1);
    add(`${p}.post_attention_layernorm.weight`, [h], 0.1, 1);
    const dims = { q: cfg.numHeads * cfg.headDim, k: cfg.numKvHeads * cfg.headDim };
    add(`${p}.self_attn.q_proj.weight`, [dims.q, h], 0.5);
    add(`${p}.self_attn.k_proj.weight`, [dims.k, h], 0.5);
    add(`${p}.self_attn.v_proj.weight`, [dims.k, h], 0.5);
    add(`${p}.self_attn.o_proj.weight`, [h, dims.q], 0.5);
    if (cfg.attentionBias) {
      add(`${p}.self_attn.q_proj.bias`, [dims.q], 0.2);
      add(`${p}.self_attn.k_proj.bias`, [dims.k], 0.2);
      add(`${p}.self_attn.v_proj.bias`, [dims.k], 0.2);
      add(`${p}.self_attn.o_proj.bias`, [h], 0.2);
    }
    const isMoe = cfg.nRoutedExperts !== null && i >= cfg.firstKDenseReplace && i % cfg.moeLayerFreq === 0;
    if (!isMoe) {
      mlp(`${p}.mlp`, cfg.intermediateSize);
      continue;
    }
    add(`${p}.mlp.gate.weight`, [cfg.nRoutedExperts ?? 0, h], 1);
    for (let j = 0; j < (cfg.nRoutedExperts ?? 0); j++) mlp(`${p}.mlp.experts.${j}`, cfg.moeIntermediateSize);
    const shared = cfg.nSharedExperts ?? 0;
    if (shared > 0) mlp(`${p}.mlp.shared_experts`, cfg.moeIntermediateSize * shared);
  }
  return mapGetter(weights, shapes);
}

const microConfig: RawConfig = {
  model_type: 'deepseek',
  hidden_size: 16,
  intermediate_size: 24,
  moe_intermediate_size: 6,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  n_routed_experts: 5,
  n_shared_experts: 2,
  num_experts_per_tok: 2,
  norm_topk_prob: true,
  scoring_func: 'softmax',
  first_k_dense_replace: 1,
  moe_layer_freq: 1,
  rope_theta: 10000,
  rope_scaling: null,
  rms_norm_eps: 1e-6,
  vocab_size: 32,
  tie_word_embeddings: false,
  max_position_embeddings: 64,
  attention_bias: true,
};

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('reference: prefill equals incremental decode', () => {
  const tokens = [3, 17, 0, 31, 8, 8, 12];
  const variants: [string, RawConfig][] = [
    ['plain', {}],
    ['linear rope scaling', { rope_scaling: { type: 'linear', factor: 2 } }],
    ['dynamic rope below max positions', { rope_scaling: { type: 'dynamic', factor: 4 } }],
    ['tied embeddings, no bias, MHA', { tie_word_embeddings: true, attention_bias: false, num_key_value_heads: 4 }],
  ];
  for (const [label, overrides] of variants) {
    it(label, () => {
      const raw = { ...microConfig, ...overrides };
      const model = new ReferenceDeepseek(raw, randomGetter(raw, 7));
      const whole = model.newSequence().forward(tokens);
      expect(whole.moeLayers).toEqual([1, 2]);
      const stepwise = model.newSequence();
      const chunked = model.newSequence();
      const chunkedRows = [...chunked.forward(tokens.slice(0, 3)).logits, ...chunked.forward(tokens.slice(3)).logits];
      tokens.forEach((tok, t) => {
        const step = stepwise.forward([tok]);
        expect(maxAbsDiff(step.logits[0], whole.logits[t])).toBeLessThan(1e-9);
        expect(maxAbsDiff(chunkedRows[t], whole.logits[t])).toBeLessThan(1e-9);
        expect(step.experts[0]).toEqual(whole.experts[t]);
        for (const row of whole.logits[t]) expect(Number.isFinite(row)).toBe(true);
      });
      // Every token records k distinct experts for each of the two MoE layers.
      for (const perToken of whole.experts) {
        expect(perToken).toHaveLength(2);
        for (const ids of perToken) expect(new Set(ids).size).toBe(2);
      }
    });
  }
});

describe('reference: grouped-query attention', () => {
  it('equals multi-head attention with each kv head repeated for its query-head group (repeat_kv)', () => {
    // 4 query heads over 2 kv heads: query head h reads kv head floor(h / 2).
    const gqa = { ...microConfig, num_key_value_heads: 2 };
    const mha = { ...microConfig, num_key_value_heads: 4 };
    const gqaGet = randomGetter(gqa, 9);
    const headDim = 4;
    const mhaGet: WeightGetter = (name, shape) => {
      if (!/self_attn\.[kv]_proj\./.test(name)) return gqaGet(name, shape);
      const rowLen = shape.length === 2 ? shape[1] : 1;
      const src = gqaGet(name, [shape[0] / 2, ...shape.slice(1)]);
      const out = new Float32Array(shape[0] * rowLen);
      for (let h = 0; h < 4; h++) {
        const from = Math.floor(h / 2) * headDim * rowLen;
        out.set(src.subarray(from, from + headDim * rowLen), h * headDim * rowLen);
      }
      return out;
    };
    const tokens = [4, 9, 9, 30];
    const a = new ReferenceDeepseek(gqa, gqaGet).newSequence().forward(tokens);
    const b = new ReferenceDeepseek(mha, mhaGet).newSequence().forward(tokens);
    tokens.forEach((_, t) => expect(maxAbsDiff(a.logits[t], b.logits[t])).toBeLessThan(1e-12));
    expect(a.experts).toEqual(b.experts);
  });
});

describe('reference: dynamic NTK past max_position_embeddings', () => {
  it('a prefill of length L rotates every position with the base HF derives from L', () => {
    // head_dim 4, max 4, factor 2, L = 6: base = 10000 * (2 * 6 / 4 - 1) ^ (4 / 2) = 40000.
    const dynamic = { ...microConfig, max_position_embeddings: 4, rope_scaling: { type: 'dynamic', factor: 2 } };
    const plain = { ...microConfig, rope_theta: 40000 };
    const tokens = [1, 2, 3, 4, 5, 6];
    const a = new ReferenceDeepseek(dynamic, randomGetter(dynamic, 5)).newSequence().forward(tokens);
    const b = new ReferenceDeepseek(plain, randomGetter(plain, 5)).newSequence().forward(tokens);
    tokens.forEach((_, t) => expect(maxAbsDiff(a.logits[t], b.logits[t])).toBeLessThan(1e-12));
  });
});

describe('reference: one layer, two tokens, attention by hand', () => {
  it('matches the hand-computed causal attention with RoPE', () => {
    // hidden 4, one head of dim 4; q/k/v/o/lm_head identity; all norms 1; MLP weights zero.
    const raw: RawConfig = {
      hidden_size: 4,
      intermediate_size: 2,
      num_hidden_layers: 1,
      num_attention_heads: 1,
      vocab_size: 4,
      rope_theta: 10000,
      rms_norm_eps: 1e-6,
      max_position_embeddings: 16,
    };
    const eye = Float32Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    const ones = Float32Array.from([1, 1, 1, 1]);
    const embed = Float32Array.from([1, 2, 3, 4, 0.5, -1, 2, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    const tensors: Record<string, Float32Array> = {
      'model.embed_tokens.weight': embed,
      'model.norm.weight': ones,
      'lm_head.weight': eye,
      'model.layers.0.input_layernorm.weight': ones,
      'model.layers.0.post_attention_layernorm.weight': ones,
      'model.layers.0.self_attn.q_proj.weight': eye,
      'model.layers.0.self_attn.k_proj.weight': eye,
      'model.layers.0.self_attn.v_proj.weight': eye,
      'model.layers.0.self_attn.o_proj.weight': eye,
      'model.layers.0.mlp.gate_proj.weight': new Float32Array(8),
      'model.layers.0.mlp.up_proj.weight': new Float32Array(8),
      'model.layers.0.mlp.down_proj.weight': new Float32Array(8),
    };
    const model = new ReferenceDeepseek(raw, (name) => tensors[name]);
    const out = model.newSequence().forward([0, 1]);

    const norm = (x: number[]): number[] => {
      const r = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + 1e-6);
      return x.map((v) => v / r);
    };
    const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i], 0);
    const x0 = [1, 2, 3, 4];
    const x1 = [0.5, -1, 2, 0];
    const n0 = norm(x0);
    const n1 = norm(x1);
    // Position 1, d = 4: pairs (0,2) turn by 1 rad, pairs (1,3) by 1/10000^(2/4) = 0.01 rad.
    const rot = (v: number[]): number[] => [
      v[0] * Math.cos(1) - v[2] * Math.sin(1),
      v[1] * Math.cos(0.01) - v[3] * Math.sin(0.01),
      v[2] * Math.cos(1) + v[0] * Math.sin(1),
      v[3] * Math.cos(0.01) + v[1] * Math.sin(0.01),
    ];
    // Token 0 sees only itself; position 0 is no rotation.
    const expected0 = norm(x0.map((v, i) => v + n0[i]));
    // Token 1: scores q1.k0/2 and q1.k1/2 (scale 1/sqrt(4)), k0 unrotated, q1 and k1 rotated.
    const q1 = rot(n1);
    const s0 = dot(q1, n0) / 2;
    const s1 = dot(q1, rot(n1)) / 2;
    const p0 = Math.exp(s0) / (Math.exp(s0) + Math.exp(s1));
    const expected1 = norm(x1.map((v, i) => v + p0 * n0[i] + (1 - p0) * n1[i]));
    expect(maxAbsDiff(out.logits[0], Float64Array.from(expected0))).toBeLessThan(1e-12);
    expect(maxAbsDiff(out.logits[1], Float64Array.from(expected1))).toBeLessThan(1e-12);
    expect(out.moeLayers).toEqual([]);
    expect(out.experts).toEqual([[], []]);
  });
});

describe('reference: MoE combine', () => {
  it('top_k = n_routed_experts with norm_topk_prob is the softmax-weighted sum of all experts', () => {
    // One MoE layer whose attention output is zero (o_proj = 0), so the layer output is
    // x + MoE(rmsnorm(x)) and the expectation can be written out directly.
    const raw: RawConfig = {
      ...microConfig,
      num_hidden_layers: 1,
      first_k_dense_replace: 0,
      n_routed_experts: 4,
      num_experts_per_tok: 4,
      n_shared_experts: 1,
      attention_bias: false,
    };
    const random = randomGetter(raw, 11);
    const get: WeightGetter = (name, shape) =>
      name.endsWith('o_proj.weight') ? new Float32Array(shape[0] * shape[1]) : random(name, shape);
    const model = new ReferenceDeepseek(raw, get);
    const h = 16;
    const matvec = (w: Float32Array, x: number[], rows: number): number[] =>
      Array.from({ length: rows }, (_, r) => x.reduce((s, v, c) => s + w[r * x.length + c] * v, 0));
    const norm = (x: number[], w: Float32Array): number[] => {
      const r = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + 1e-6);
      return x.map((v, i) => (v / r) * w[i]);
    };
    const expert = (p: string, x: number[], inter: number): number[] => {
      const g = matvec(get(`${p}.gate_proj.weight`, [inter, h]), x, inter);
      const u = matvec(get(`${p}.up_proj.weight`, [inter, h]), x, inter);
      const act = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]);
      return matvec(get(`${p}.down_proj.weight`, [h, inter]), act, h);
    };
    const tokenId = 5;
    const x = Array.from(get('model.embed_tokens.weight', [32, h]).subarray(tokenId * h, (tokenId + 1) * h));
    const n = norm(x, get('model.layers.0.post_attention_layernorm.weight', [h]));
    const logits = matvec(get('model.layers.0.mlp.gate.weight', [4, h]), n, 4);
    const z = logits.reduce((s, l) => s + Math.exp(l), 0);
    const probs = logits.map((l) => Math.exp(l) / z);
    const moe = expert('model.layers.0.mlp.shared_experts', n, 6);
    probs.forEach((p, j) => {
      expert(`model.layers.0.mlp.experts.${j}`, n, 6).forEach((v, d) => (moe[d] += p * v));
    });
    const final = norm(
      x.map((v, d) => v + moe[d]),
      get('model.norm.weight', [h]),
    );
    const expected = matvec(get('lm_head.weight', [32, h]), final, 32);

    const out = model.newSequence().forward([tokenId]);
    expect(maxAbsDiff(out.logits[0], Float64Array.from(expected))).toBeLessThan(1e-10);
    const byScore = [0, 1, 2, 3].sort((a, b) => probs[b] - probs[a]);
    expect(out.experts).toEqual([[byScore]]);
  });

  it('routes: renormalises only when top_k > 1 and norm_topk_prob; ties go to the lower index', () => {
    const logits = Float64Array.from([0.5, 2, 2, -1, 0.5]);
    const z = [0.5, 2, 2, -1, 0.5].reduce((s, l) => s + Math.exp(l), 0);
    const p = (l: number): number => Math.exp(l) / z;

    const raw = routeSoftmaxTopK(logits, 3, false);
    expect(raw.expertIds).toEqual([1, 2, 0]);
    raw.weights.forEach((w, i) => expect(w).toBeCloseTo(p([2, 2, 0.5][i]), 14));

    const renorm = routeSoftmaxTopK(logits, 3, true);
    expect(renorm.expertIds).toEqual([1, 2, 0]);
    const sum = p(2) * 2 + p(0.5);
    renorm.weights.forEach((w, i) => expect(w).toBeCloseTo(p([2, 2, 0.5][i]) / (sum + 1e-20), 14));

    // HF skips renormalisation for top_k == 1 even when norm_topk_prob is set.
    const single = routeSoftmaxTopK(logits, 1, true);
    expect(single.expertIds).toEqual([1]);
    expect(single.weights[0]).toBeCloseTo(p(2), 14);
  });
});

describe('reference: RoPE', () => {
  const cfgFor = (extra: RawConfig) => parseDeepseekConfig({ ...microConfig, hidden_size: 32, num_attention_heads: 4, ...extra });
  const rotated = (v: number[], position: number, extra: RawConfig = {}, totalLen = 1): Float64Array => {
    const cfg = cfgFor(extra);
    const out = Float64Array.from(v);
    applyRopeInPlace(out, 0, cfg.headDim, ropeTable(cfg, ropeInvFreq(cfg, totalLen), position));
    return out;
  };
  const dot = (a: Float64Array, b: Float64Array): number => a.reduce((s, v, i) => s + v * b[i], 0);

  it('q.k after rotation depends only on the relative position', () => {
    const next = rng(3);
    const q = Array.from({ length: 8 }, () => 2 * next() - 1);
    const k = Array.from({ length: 8 }, () => 2 * next() - 1);
    for (const [pq, pk] of [
      [5, 2],
      [9, 9],
      [3, 7],
    ]) {
      const base = dot(rotated(q, pq), rotated(k, pk));
      for (const shift of [1, 13, 40]) {
        expect(dot(rotated(q, pq + shift), rotated(k, pk + shift))).toBeCloseTo(base, 10);
      }
    }
    // Relative position matters: otherwise the invariance above would be vacuous.
    expect(Math.abs(dot(rotated(q, 5), rotated(k, 2)) - dot(rotated(q, 5), rotated(k, 4)))).toBeGreaterThan(1e-3);
  });

  it('rotates the halves (rotate_half), not interleaved pairs', () => {
    // head_dim 8: dimension 0 pairs with dimension 4 at inv_freq[0] = 1.
    const out = rotated([1, 0, 0, 0, 0, 0, 0, 0], 1);
    expect(Array.from(out)).toEqual([Math.cos(1), 0, 0, 0, Math.sin(1), 0, 0, 0]);
  });

  it('linear scaling divides positions by the factor', () => {
    const v = [0.3, -1, 2, 0.5, 1, 1, -0.2, 0.7];
    const scaled = rotated(v, 6, { rope_scaling: { type: 'linear', factor: 2 } });
    expect(maxAbsDiff(scaled, rotated(v, 3))).toBeLessThan(1e-15);
  });

  it('dynamic NTK changes the base only past max_position_embeddings', () => {
    const extra = { rope_scaling: { type: 'dynamic', factor: 2 }, max_position_embeddings: 8, hidden_size: 16 };
    const cfg = cfgFor(extra); // head_dim 4
    expect(Array.from(ropeInvFreq(cfg, 8))).toEqual([1, 1 / 100]);
    // len 16: base = 10000 * (2 * 16 / 8 - (2 - 1)) ^ (4 / 2) = 90000, inv_freq[1] = 1/300.
    const inv = ropeInvFreq(cfg, 16);
    expect(inv[0]).toBe(1);
    expect(inv[1]).toBeCloseTo(1 / 300, 15);
  });
});

describe('reference: tiny synthetic checkpoint through the real loader', () => {
  it('loads config.json + safetensors and runs prefill and decode with finite logits', () => {
    const outDir = mkdtempSync(join(tmpdir(), 'moe-reference-'));
    try {
      writeSyntheticCheckpoint({ outDir, size: 'tiny', seed: 1, configOverrides: { norm_topk_prob: true } });
      const model = ReferenceDeepseek.load(outDir);
      const { vocabSize, nRoutedExperts, numExpertsPerTok } = model.config;
      const seq = model.newSequence();
      const prefill = seq.forward([1, 450, 4996, 17354]);
      const decode = seq.forward([1701]);
      expect(prefill.moeLayers).toEqual([1, 2]);
      for (const step of [prefill, decode]) {
        for (const row of step.logits) {
          expect(row).toHaveLength(vocabSize);
          expect(row.every(Number.isFinite)).toBe(true);
          // Random O(1) weights give spread-out logits; all-equal rows would mean dead weights.
          expect(Math.max(...row) - Math.min(...row)).toBeGreaterThan(0.1);
        }
        for (const perToken of step.experts) {
          expect(perToken).toHaveLength(2);
          for (const ids of perToken) {
            expect(ids).toHaveLength(numExpertsPerTok);
            expect(new Set(ids).size).toBe(numExpertsPerTok);
            for (const id of ids) expect(id >= 0 && id < (nRoutedExperts ?? 0)).toBe(true);
          }
        }
      }
      // Decoding the fifth token after a 4-token prefill equals a 5-token prefill.
      const whole = model.newSequence().forward([1, 450, 4996, 17354, 1701]);
      expect(maxAbsDiff(whole.logits[4], decode.logits[0])).toBeLessThan(1e-9);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  });
});
