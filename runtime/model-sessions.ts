// Opens a compiled model: MLA's unsplit mla-in and attn-out graphs as ONNX Runtime sessions
// on this thread; attention, MLPs and the LM head as tensor-parallel shards (this thread is
// rank 0); and the embeddings.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { GraphSession, type SessionSettings } from '../kernels/session.ts';
import type { CompiledModel, Manifest } from '../models/compile.ts';
import { ShardGroup } from './tp/shard-group.ts';

/** MLA layers' unsplit graphs (rank 0); both null for standard attention. */
export interface LayerSessions {
  /** The q / cache-row graph. */
  mlaIn: GraphSession | null;
  /** W_UV, o_proj and the residual add. */
  attnOut: GraphSession | null;
}

export interface ModelSessions {
  manifest: Manifest;
  layers: LayerSessions[];
  shards: ShardGroup;
  /** [vocabSize, hiddenSize] */
  embeddings: Float32Array;
  release(): Promise<void>;
}

/**
 * Threads per shard session: the cores divided among the shards, so with two shards on two
 * cores each shard runs single-threaded and the two together fill the machine.
 */
export function shardSettings(settings: SessionSettings, shards: number): SessionSettings {
  if (shards <= 1) return settings;
  const cores = settings.intraOpThreads > 0 ? settings.intraOpThreads : availableParallelism();
  return { ...settings, intraOpThreads: Math.max(1, Math.floor(cores / shards)) };
}

export async function openModelSessions(
  compiled: CompiledModel,
  settings: SessionSettings,
  onProgress?: (done: number, total: number) => void,
): Promise<ModelSessions> {
  const { dir, manifest } = compiled;
  const mla = manifest.layers.filter((l) => l.mlaIn !== undefined).length;
  const total = 2 + mla;
  let done = 0;
  const open = async (file: string | undefined): Promise<GraphSession | null> => {
    if (file === undefined) return null;
    const session = new GraphSession(join(dir, file), settings);
    onProgress?.(++done, total);
    // Yield between sessions so a loading worker still answers messages.
    await new Promise((resolve) => setImmediate(resolve));
    return session;
  };
  const layers: LayerSessions[] = [];
  for (const layer of manifest.layers) layers.push({ mlaIn: await open(layer.mlaIn), attnOut: await open(layer.attnOut) });
  const shards = await ShardGroup.open(dir, manifest, shardSettings(settings, manifest.tensorParallel));
  onProgress?.(++done, total);
  const raw = readFileSync(join(dir, manifest.embeddings));
  const embeddings = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const release = async (): Promise<void> => {
    for (const session of layers.flatMap((l) => [l.mlaIn, l.attnOut])) session?.release();
    await shards.release();
  };
  return { manifest, layers, shards, embeddings, release };
}
