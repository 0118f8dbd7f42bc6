// Opens every graph of a compiled model as an ONNX Runtime session, plus the embedding table.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSession, type ort, type SessionSettings } from '../../kernels/session.ts';
import type { CompiledModel, Manifest } from '../../models/compile.ts';

export interface LayerSessions {
  attnIn: ort.InferenceSession;
  attnOut: ort.InferenceSession;
  experts: ort.InferenceSession[];
}

export interface ModelSessions {
  manifest: Manifest;
  attentionCore: ort.InferenceSession;
  layers: LayerSessions[];
  lmHead: ort.InferenceSession;
  /** [vocabSize, hiddenSize] */
  embeddings: Float32Array;
  release(): Promise<void>;
}

export async function openModelSessions(
  compiled: CompiledModel,
  settings: SessionSettings,
  onProgress?: (done: number, total: number) => void,
): Promise<ModelSessions> {
  const { dir, manifest } = compiled;
  const total = 2 + manifest.layers.reduce((n, l) => n + 2 + l.experts.length, 0);
  let done = 0;
  const open = async (file: string): Promise<ort.InferenceSession> => {
    const session = await createSession(join(dir, file), settings);
    onProgress?.(++done, total);
    return session;
  };
  const attentionCore = await open(manifest.attentionCore);
  const layers: LayerSessions[] = [];
  for (const layer of manifest.layers) {
    const attnIn = await open(layer.attnIn);
    const attnOut = await open(layer.attnOut);
    const experts: ort.InferenceSession[] = [];
    for (const expert of layer.experts) experts.push(await open(expert));
    layers.push({ attnIn, attnOut, experts });
  }
  const lmHead = await open(manifest.lmHead);
  const raw = readFileSync(join(dir, manifest.embeddings));
  const embeddings = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const all = [attentionCore, lmHead, ...layers.flatMap((l) => [l.attnIn, l.attnOut, ...l.experts])];
  const release = async (): Promise<void> => {
    await Promise.all(all.map((s) => s.release()));
  };
  return { manifest, attentionCore, layers, lmHead, embeddings, release };
}
