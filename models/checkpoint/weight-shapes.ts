// The shape every named weight must have, derived from a ModelSpec: one list for loaders to
// check a checkpoint against and for the synthetic writer to fill. Linear weights are
// [out_features, in_features], as Hugging Face stores them.
import { type AttentionWeightNames, isMlaNames, type MlaWeightNames, type ModelWeightNames, type SwigluWeightNames } from '../family.ts';
import type { ModelSpec } from '../spec.ts';

/** What a tensor is, which decides how synthetic weights are initialised. */
export type WeightRole = 'embedding' | 'norm' | 'linear' | 'bias' | 'router' | 'lm-head';

export interface ExpectedTensor {
  name: string;
  shape: number[];
  role: WeightRole;
}

/** Every distinct tensor a model needs, in checkpoint order (a tied LM head is listed once). */
export function expectedTensors(spec: ModelSpec, names: ModelWeightNames): ExpectedTensor[] {
  const hidden = spec.hiddenSize;
  const out: ExpectedTensor[] = [{ name: names.embedTokens, shape: [spec.vocabSize, hidden], role: 'embedding' }];
  names.layers.forEach((layer, i) => {
    out.push({ name: layer.inputNorm, shape: [hidden], role: 'norm' });
    out.push(...attentionTensors(spec, layer.attention));
    out.push({ name: layer.postAttentionNorm, shape: [hidden], role: 'norm' });
    out.push(...mlpTensors(spec, i, layer.mlp));
  });
  out.push({ name: names.finalNorm, shape: [hidden], role: 'norm' });
  if (names.lmHead !== names.embedTokens) {
    out.push({ name: names.lmHead, shape: [spec.vocabSize, hidden], role: 'lm-head' });
  }
  return out;
}

function mlaTensors(spec: ModelSpec, names: MlaWeightNames): ExpectedTensor[] {
  const mla = spec.mla;
  if (mla === undefined) throw new Error('MLA weight names for a model without MLA');
  const { hiddenSize: hidden, numHeads: heads } = spec;
  const qWidth = heads * (mla.qkNopeHeadDim + mla.qkRopeHeadDim);
  const out: ExpectedTensor[] = [];
  const linear = (name: string | undefined, rows: number, cols: number): void => {
    if (name !== undefined) out.push({ name, shape: [rows, cols], role: 'linear' });
  };
  if (mla.qLoraRank === null) linear(names.q, qWidth, hidden);
  else {
    linear(names.qA, mla.qLoraRank, hidden);
    if (names.qANorm !== undefined) out.push({ name: names.qANorm, shape: [mla.qLoraRank], role: 'norm' });
    linear(names.qB, qWidth, mla.qLoraRank);
  }
  linear(names.kvA, mla.kvLoraRank + mla.qkRopeHeadDim, hidden);
  out.push({ name: names.kvANorm, shape: [mla.kvLoraRank], role: 'norm' });
  linear(names.kvB, heads * (mla.qkNopeHeadDim + mla.vHeadDim), mla.kvLoraRank);
  linear(names.o, hidden, heads * mla.vHeadDim);
  return out;
}

function attentionTensors(spec: ModelSpec, names: AttentionWeightNames | MlaWeightNames): ExpectedTensor[] {
  if (isMlaNames(names)) return mlaTensors(spec, names);
  const hidden = spec.hiddenSize;
  const qWidth = spec.numHeads * spec.headDim;
  const kvWidth = spec.numKvHeads * spec.headDim;
  const out: ExpectedTensor[] = [
    { name: names.q, shape: [qWidth, hidden], role: 'linear' },
    { name: names.k, shape: [kvWidth, hidden], role: 'linear' },
    { name: names.v, shape: [kvWidth, hidden], role: 'linear' },
    { name: names.o, shape: [hidden, qWidth], role: 'linear' },
  ];
  if (names.qBias !== undefined) out.push({ name: names.qBias, shape: [qWidth], role: 'bias' });
  if (names.kBias !== undefined) out.push({ name: names.kBias, shape: [kvWidth], role: 'bias' });
  if (names.vBias !== undefined) out.push({ name: names.vBias, shape: [kvWidth], role: 'bias' });
  if (names.qNorm !== undefined && names.kNorm !== undefined) {
    const perHead = spec.qkNorm === 'head';
    out.push({ name: names.qNorm, shape: [perHead ? spec.headDim : qWidth], role: 'norm' });
    out.push({ name: names.kNorm, shape: [perHead ? spec.headDim : kvWidth], role: 'norm' });
  }
  return out;
}

function mlpTensors(spec: ModelSpec, layer: number, names: ModelWeightNames['layers'][number]['mlp']): ExpectedTensor[] {
  const mlp = spec.mlp[layer];
  if (names.kind === 'dense' || mlp.kind === 'dense') {
    if (names.kind !== 'dense' || mlp.kind !== 'dense') {
      throw new Error(`layer ${layer}: weight names (${names.kind}) disagree with the spec (${mlp.kind})`);
    }
    return swigluTensors(spec.hiddenSize, mlp.intermediateSize, names.mlp);
  }
  const out: ExpectedTensor[] = [{ name: names.router, shape: [mlp.numRoutedExperts, spec.hiddenSize], role: 'router' }];
  for (const expert of names.experts) out.push(...swigluTensors(spec.hiddenSize, mlp.expertIntermediateSize, expert));
  if (names.shared !== undefined) out.push(...swigluTensors(spec.hiddenSize, mlp.sharedIntermediateSize, names.shared));
  if (names.sharedGate !== undefined) out.push({ name: names.sharedGate, shape: [1, spec.hiddenSize], role: 'router' });
  if (names.correctionBias !== undefined) out.push({ name: names.correctionBias, shape: [mlp.numRoutedExperts], role: 'bias' });
  return out;
}

function swigluTensors(hidden: number, intermediate: number, names: SwigluWeightNames): ExpectedTensor[] {
  return [
    { name: names.gate, shape: [intermediate, hidden], role: 'linear' },
    { name: names.up, shape: [intermediate, hidden], role: 'linear' },
    { name: names.down, shape: [hidden, intermediate], role: 'linear' },
  ];
}
