// The compile step: content-keyed reuse, and clear errors (naming tensor and file) for a
// checkpoint that does not match its config, before ONNX Runtime ever sees it.
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphSession } from '../../kernels/session.ts';
import { compileModel, resolveExpertPlacement } from '../../models/compile.ts';
import { loadModelSpec } from '../../models/registry.ts';
import { isMoe } from '../../models/spec.ts';
import { CheckpointError } from '../../models/errors.ts';
import { ensureSyntheticCheckpoint } from '../../models/synthetic.ts';
import { removeTempDirs, rewriteTensors, tempDir, thrownBy } from './helpers.ts';

afterAll(removeTempDirs);

function tinyCheckpoint(): string {
  return ensureSyntheticCheckpoint({ outDir: join(tempDir(), 'model'), size: 'tiny', seed: 5 });
}

describe('compileModel', () => {
  it('writes graphs, external weights and a manifest, then reuses them', () => {
    const dir = tinyCheckpoint();
    const cacheDir = tempDir();
    const first = compileModel({ modelDir: dir, weights: 'fp32', cacheDir });
    expect(first.reused).toBe(false);
    expect(existsSync(join(first.dir, 'manifest.json'))).toBe(true);
    const files = readdirSync(first.dir);
    // attention core, batched decode attention, LM head, 3 layers x (attn-in, o-proj, mlp-in), 2 MoE layers x 8 experts
    expect(files.filter((f) => f.endsWith('.onnx')).length).toBe(3 + 3 * 3 + 2 * 8);
    expect(files.filter((f) => f.endsWith('.onnx.data')).length).toBeGreaterThan(0);
    const again = compileModel({ modelDir: dir, weights: 'fp32', cacheDir });
    expect(again).toMatchObject({ reused: true, dir: first.dir });
    const int4 = compileModel({ modelDir: dir, weights: 'int4', cacheDir });
    expect(int4.reused).toBe(false);
    expect(int4.dir).not.toBe(first.dir);
  });

  it('splits every MLP and the LM head into one graph per tensor-parallel shard', () => {
    const dir = tinyCheckpoint();
    const { manifest, dir: compiled } = compileModel({
      modelDir: dir,
      weights: 'fp32',
      cacheDir: tempDir(),
      tensorParallel: 2,
      expertPlacement: 'split',
    });
    expect(manifest.tensorParallel).toBe(2);
    expect(manifest.layers[1].shards[0].experts[0]).not.toBe(manifest.layers[1].shards[1].experts[0]);
    expect(manifest.lmHead.map(({ start, end }) => [start, end])).toEqual([
      [0, 16000],
      [16000, 32000],
    ]);
    for (const layer of manifest.layers) {
      expect(layer.shards).toHaveLength(2);
      expect(layer.shards[0].experts.length).toBe(layer.shards[1].experts.length);
    }
    expect(manifest.layers[0].shards.every((s) => s.experts.length === 0)).toBe(true);
    expect(manifest.layers[1].shards.every((s) => s.experts.length === 8)).toBe(true);
    // Standard attention: every shard with heads applies its own part of o_proj; no attn-out.
    expect(manifest.layers.every((l) => l.attnOut === undefined && l.shards.every((s) => (s.oProj !== null) === (s.attnIn !== null)))).toBe(
      true,
    );
    // Each shard's mlp-in normalises, routes (MoE layers) and runs its dense or shared slice.
    const outputs = (file: string): string[] => {
      const session = new GraphSession(join(compiled, file), { provider: 'cpu', intraOpThreads: 1 });
      session.release();
      return [...session.outputNames];
    };
    expect(outputs(manifest.layers[0].shards[1].mlpIn).sort()).toEqual(['mlp_in', 'y']);
    expect(outputs(manifest.layers[1].shards[1].mlpIn).sort()).toEqual(['mlp_in', 'router_logits', 'y']);
  });

  it('replicates routed experts whole on every shard when asked, and when they fit (auto)', () => {
    const dir = tinyCheckpoint();
    const cacheDir = tempDir();
    const replicated = compileModel({ modelDir: dir, weights: 'fp32', cacheDir, tensorParallel: 2, expertPlacement: 'replicate' });
    expect(replicated.manifest.expertPlacement).toBe('replicate');
    const [first, second] = replicated.manifest.layers[1].shards;
    expect(first.experts).toEqual(second.experts);
    expect(first.experts[0]).toMatch(/^layer001\.expert000\.onnx$/);
    // The shared expert stays split inside each shard's mlp-in.
    expect(first.mlpIn).not.toBe(second.mlpIn);
    // A tiny model's replicas fit anywhere: auto picks replicate, the same compiled directory.
    expect(compileModel({ modelDir: dir, weights: 'fp32', cacheDir, tensorParallel: 2 })).toMatchObject({
      reused: true,
      dir: replicated.dir,
    });
    // Experts whose copies would not fit in an eighth of the memory stay split under auto.
    const { spec } = loadModelSpec(dir);
    const huge = { ...spec, mlp: spec.mlp.map((m) => (isMoe(m) ? { ...m, numRoutedExperts: 1_000_000 } : m)) };
    expect(resolveExpertPlacement(huge, 'int4', 2, 'auto')).toBe('split');
    expect(resolveExpertPlacement(huge, 'int4', 2, 'replicate')).toBe('replicate');
    // One shard has nothing to place.
    expect(
      compileModel({ modelDir: dir, weights: 'fp32', cacheDir, tensorParallel: 1, expertPlacement: 'replicate' }).manifest.expertPlacement,
    ).toBe('split');
  });

  it('keys the compiled model by content, not by path', () => {
    const dir = tinyCheckpoint();
    const cacheDir = tempDir();
    const first = compileModel({ modelDir: dir, weights: 'fp32', cacheDir });
    const moved = join(tempDir(), 'elsewhere');
    cpSync(dir, moved, { recursive: true });
    expect(compileModel({ modelDir: moved, weights: 'fp32', cacheDir })).toMatchObject({ reused: true, dir: first.dir });
    // One changed weight value is a different model.
    const file = join(moved, 'model.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(file, bytes);
    const changed = compileModel({ modelDir: moved, weights: 'fp32', cacheDir });
    expect(changed.reused).toBe(false);
    expect(changed.dir).not.toBe(first.dir);
  });

  it('names the missing tensor and the file', () => {
    const dir = tinyCheckpoint();
    rewriteTensors(dir, (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.experts.3.up_proj.weight'));
    const err = thrownBy(() => compileModel({ modelDir: dir, weights: 'fp32', cacheDir: tempDir() }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain('model.layers.1.mlp.experts.3.up_proj.weight');
    expect(err.message).toContain(dir);
  });

  it('names a tensor whose shape disagrees with config.json', () => {
    const dir = tinyCheckpoint();
    const name = 'model.layers.2.self_attn.k_proj.weight';
    rewriteTensors(dir, (ts) => ts.map((t) => (t.name === name ? { ...t, shape: [t.shape[0] * 2, t.shape[1]] } : t)));
    const err = thrownBy(() => compileModel({ modelDir: dir, weights: 'int4', cacheDir: tempDir() }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain(name);
    expect(err.message).toMatch(/shape/);
  });

  it('leaves no half-written compiled directory behind after a failure', () => {
    const dir = tinyCheckpoint();
    rewriteTensors(dir, (ts) => ts.filter((t) => t.name !== 'lm_head.weight'));
    const cacheDir = tempDir();
    expect(() => compileModel({ modelDir: dir, weights: 'fp32', cacheDir })).toThrow(CheckpointError);
    const compiledRoot = join(cacheDir, 'compiled');
    expect(existsSync(compiledRoot) ? readdirSync(compiledRoot) : []).toEqual([]);
  });
});
