// Opens a compiled device plan (models/compile-device.ts): the attention-input graphs, the
// fused feed-forward blocks and the LM head on the device (the CUDA provider, or the CPU
// provider where there is no GPU: the same graphs, so tests check them everywhere), and the
// attention over the paged KV cache on the CPU, where the cache lives: from Node the cache
// cannot stay on the GPU between calls (reference/gpu-facts.md), so only q/k/v rows cross.
import { join } from 'node:path';
import { GraphSession, type SessionSettings } from '../../kernels/session.ts';
import { compilePagedAttentionKernel } from '../../kernels/wasm/paged-attention-kernel.ts';
import type { CompiledDeviceModel, DeviceManifest } from '../../models/compile-device.ts';
import { AttentionShard } from '../attention/attention-shard.ts';
import { EmbeddingTable } from '../embedding-table.ts';

export interface DeviceSessions {
  manifest: DeviceManifest;
  /** Where the device graphs run. */
  device: SessionSettings;
  /** The paged cache and attention over it (CPU); for standard attention its attnIn sessions are the device's. */
  attention: AttentionShard;
  /** Per layer, on the device: q/k/v rows (MLA: queries and cache rows). */
  attnIn: GraphSession[];
  /** Per layer, on the device: o_proj + feed-forward block + residual. */
  blocks: GraphSession[];
  lmHead: GraphSession;
  /** [vocabSize, hiddenSize] */
  /** [vocabSize, hiddenSize], read a row at a time. */
  embeddings: EmbeddingTable;
  release(): Promise<void>;
}

/** `settings.provider` is where the device graphs run; the attention core always runs on the CPU. */
export async function openDeviceSessions(
  compiled: CompiledDeviceModel,
  settings: SessionSettings,
  onProgress?: (done: number, total: number) => void,
): Promise<DeviceSessions> {
  const { dir, manifest } = compiled;
  const { spec } = manifest;
  const cpu: SessionSettings = { provider: 'cpu', intraOpThreads: settings.intraOpThreads, attention: settings.attention };
  const device: SessionSettings = settings.provider === 'cuda' ? { ...settings, intraOpThreads: 1 } : settings;
  const total = 2 * manifest.layers.length + 1;
  let done = 0;
  const opened: GraphSession[] = [];
  const open = async (file: string, where: SessionSettings): Promise<GraphSession> => {
    const session = new GraphSession(join(dir, file), where);
    opened.push(session);
    onProgress?.(++done, total);
    // Yield between sessions so a loading worker still answers messages.
    await new Promise((resolve) => setImmediate(resolve));
    return session;
  };
  try {
    const attnIn: GraphSession[] = [];
    const blocks: GraphSession[] = [];
    for (const layer of manifest.layers) {
      attnIn.push(await open(layer.attnIn, device));
      blocks.push(await open(layer.block, device));
    }
    const lmHead = await open(manifest.lmHead, device);
    const core = new GraphSession(join(dir, manifest.attention.core), cpu);
    opened.push(core);
    const decode = manifest.attention.decode === null ? null : new GraphSession(join(dir, manifest.attention.decode), cpu);
    if (decode) opened.push(decode);
    const kernel = settings.attention === 'onnx' ? null : await compilePagedAttentionKernel();
    const attention = new AttentionShard(
      spec,
      { kvHeads: [0, spec.mla ? 1 : spec.numKvHeads], core, decode, attnIn: spec.mla ? [] : attnIn, oProj: [] },
      kernel,
    );
    const embeddings = new EmbeddingTable(join(dir, manifest.embeddings), spec.hiddenSize);
    const release = async (): Promise<void> => {
      for (const session of opened) session.release();
      embeddings.close();
    };
    return { manifest, device, attention, attnIn, blocks, lmHead, embeddings, release };
  } catch (err) {
    for (const session of opened) session.release();
    throw err;
  }
}
