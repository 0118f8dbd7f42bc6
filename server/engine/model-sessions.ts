// Opens every graph of a compiled model as an ONNX Runtime session, plus the embedding table.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphSession, type SessionSettings } from '../../kernels/session.ts';
import type { CompiledModel, Manifest } from '../../models/compile.ts';

export interface LayerSessions {
  attnIn: GraphSession;
  attnOut: GraphSession;
  experts: GraphSession[];
}

export interface ModelSessions {
  manifest: Manifest;
  attentionCore: GraphSession;
  layers: LayerSessions[];
  lmHead: GraphSession;
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
  const open = async (file: string): Promise<GraphSession> => {
    const session = new GraphSession(join(dir, file), settings);
    // Yield between sessions so a loading worker still answers messages (progress, cancel).
    await new Promise((resolve) => setImmediate(resolve));
    onProgress?.(++done, total);
    return session;
  };
  const attentionCore = await open(manifest.attentionCore);
  const layers: LayerSessions[] = [];
  for (const layer of manifest.layers) {
    const attnIn = await open(layer.attnIn);
    const attnOut = await open(layer.attnOut);
    const experts: GraphSession[] = [];
    for (const expert of layer.experts) experts.push(await open(expert));
    layers.push({ attnIn, attnOut, experts });
  }
  const lmHead = await open(manifest.lmHead);
  const raw = readFileSync(join(dir, manifest.embeddings));
  const embeddings = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const all = [attentionCore, lmHead, ...layers.flatMap((l) => [l.attnIn, l.attnOut, ...l.experts])];
  const release = async (): Promise<void> => {
    for (const session of all) session.release();
  };
  return { manifest, attentionCore, layers, lmHead, embeddings, release };
}
