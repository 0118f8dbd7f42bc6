// The fused plan through the real engine worker and HTTP app (on the CPU provider: this machine
// has no GPU), /v1/models and /health reporting where and how the model runs, the counted
// graph calls matching the calls the runners really make, and `--device cuda` refusing to start
// without the CUDA provider rather than running on the CPU.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphSession } from '../../kernels/session.ts';
import { missingCudaLibraries } from '../../kernels/cuda-provider.ts';
import { loadModelSpec } from '../../models/registry.ts';
import { decodeGraphCalls } from '../../runtime/device/graph-calls.ts';
import { buildApp, type App } from '../../server/app.ts';
import { loadServedModel, type ServedModel } from '../../server/served-model.ts';
import { runCli } from '../helpers/cli.ts';
import { openDeviceRunner, PRECISIONS } from '../helpers/device-model.ts';
import { openRunner, testTokens, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

describe('the fused plan served', () => {
  let tiny: TinyModel;
  let model: ServedModel;
  let built: App;
  beforeAll(async () => {
    tiny = writeTinyModel({}, 1, 'deepseek_v2');
    model = await loadServedModel({
      modelDir: tiny.dir,
      cacheDir: tiny.cacheDir,
      weights: 'fp32',
      threads: 1,
      tensorParallel: 1,
      plan: 'fused',
    });
    built = await buildApp({ model: Promise.resolve(model) });
  });
  afterAll(async () => {
    await built?.app.close();
    await model?.engine.close();
    tiny?.remove();
  });

  it('/v1/models and /health report the device, the plan and the graph calls per decode step', async () => {
    const layers = loadModelSpec(tiny.dir).spec.numLayers;
    const listed = (await built.app.inject({ url: '/v1/models' })).json().data[0];
    expect(listed.execution).toMatchObject({
      device: 'cpu',
      plan: 'fused',
      graph_calls_per_decode_step: { device: 0, cpu: 2 * layers + 1 },
    });
    expect(listed.execution.precision).toMatch(/routed experts float32 MoE/);
    expect((await built.app.inject({ url: '/health' })).json()).toMatchObject({ status: 'ok', device: 'cpu' });
  });

  it('completes a prompt', async () => {
    const res = await built.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { prompt: 'Hello', max_tokens: 5, temperature: 0 },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().usage.completion_tokens).toBe(5);
  });
});

describe('graph calls per decode step', () => {
  /** ONNX Runtime calls `fn` makes on this thread. */
  function countCalls(fn: () => void): number {
    const run = GraphSession.prototype.run;
    let calls = 0;
    GraphSession.prototype.run = function (this: GraphSession, feeds) {
      calls++;
      return run.call(this, feeds);
    };
    try {
      fn();
    } finally {
      GraphSession.prototype.run = run;
    }
    return calls;
  }

  it.each(['mixtral', 'deepseek_v3'] as const)('%s: counted as the runners make them (one sequence, one shard)', async (family) => {
    const tiny = writeTinyModel({}, 1, family);
    try {
      const { spec } = loadModelSpec(tiny.dir);
      const prompt = testTokens(7, 3);
      const fused = await openDeviceRunner(tiny, PRECISIONS.fp32);
      const perExpert = await openRunner(tiny, 'fp32', 0, 1);
      try {
        for (const [opened, plan] of [
          [fused, 'fused'],
          [perExpert, 'per-expert'],
        ] as const) {
          const cache = opened.newCache(16);
          opened.runner.step([{ tokens: prompt, cache, logits: 'last' }]);
          const made = countCalls(() => opened.runner.step([{ tokens: [5], cache, logits: 'last' }]));
          const counted = decodeGraphCalls(spec, { plan, batch: 1, shards: 1 });
          // Batch 1 picks exactly top-k experts per MoE layer, so the expectation is exact.
          expect(made, plan).toBe(counted.device + counted.cpu);
        }
      } finally {
        await fused.release();
        await perExpert.release();
      }
    } finally {
      tiny.remove();
    }
  });

  it('grow with the batch for the per-expert plan, not for the fused one', () => {
    const dir = writeTinyModel({}, 1, 'mixtral');
    try {
      const { spec } = loadModelSpec(dir.dir);
      const at = (plan: 'fused' | 'per-expert', batch: number) => decodeGraphCalls(spec, { plan, batch, shards: 2, placement: 'split' });
      expect(at('fused', 32)).toEqual(at('fused', 1));
      expect(at('per-expert', 32).cpu).toBeGreaterThan(at('per-expert', 1).cpu);
      expect(at('per-expert', 32).cpuMax).toBe(2 + 3 * (2 * 2 + 2 + 2 * 8));
    } finally {
      dir.remove();
    }
  });
});

describe('--device cuda without the CUDA provider', () => {
  it.skipIf(missingCudaLibraries().length === 0)('refuses to start, saying how to install it, instead of running on the CPU', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'moe-cuda-cli-'));
    try {
      const { code, stderr } = await runCli(['serve', '--device', 'cuda', '--port', '0', '--cache-dir', cache]);
      expect(code).toBe(1);
      expect(stderr).toMatch(/the model failed to load: --device cuda: ONNX Runtime's CUDA execution provider is not installed/);
      expect(stderr).toMatch(/ONNXRUNTIME_NODE_INSTALL=true node node_modules\/onnxruntime-node\/script\/install\.js/);
      expect(stderr).not.toMatch(/^ready:/m);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
