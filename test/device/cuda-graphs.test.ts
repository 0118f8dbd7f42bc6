// The graphs the device plan puts on CUDA, checked without a GPU: every node against ONNX
// Runtime's CUDA kernel table (graphs/cuda-op-kernels.json, from its OperatorKernels.md) with
// the types that reach it, the QMoE shape constraints, and the session options that make a
// CUDA session refuse any node the provider cannot take (no silent CPU fallback).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCudaNodes, loadCudaKernelTable } from '../../graphs/cuda-op-check.ts';
import { cudaPlanProblems, QMOE_CUDA } from '../../graphs/cuda-constraints.ts';
import type { BlockPrecision } from '../../graphs/moe-block.ts';
import { checkCudaProvider, CudaProviderError, missingCudaLibraries } from '../../kernels/cuda-provider.ts';
import { sessionOptions } from '../../kernels/session.ts';
import { compileDeviceModel } from '../../models/compile-device.ts';
import { loadModelSpec } from '../../models/registry.ts';
import { SYNTHETIC_FAMILIES, type SyntheticFamily } from '../../models/synthetic.ts';
import { cudaShapedOverrides } from '../../models/synthetic-device-presets.ts';
import { cudaPrecision } from '../../runtime/device/device-plan.ts';
import { PRECISIONS } from '../helpers/device-model.ts';
import { type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

/** The files of a compiled device plan that run on the device. */
function deviceGraphs(model: TinyModel, precision: BlockPrecision): Array<{ file: string; bytes: Uint8Array }> {
  const { dir, manifest } = compileDeviceModel({ modelDir: model.dir, precision, cacheDir: model.cacheDir });
  const files = [...manifest.layers.flatMap((l) => [l.attnIn, l.block]), manifest.lmHead];
  return files.map((file) => ({ file, bytes: readFileSync(join(dir, file)) }));
}

const table = loadCudaKernelTable();

describe('the CUDA kernel table', () => {
  it('names its source and covers the ops of every graph checked below', () => {
    expect(table.source).toMatch(/^https:\/\/github\.com\/microsoft\/onnxruntime\/blob\/[0-9a-f]{40}\/docs\/OperatorKernels\.md/);
    expect(Object.keys(table.ops['com.microsoft']).sort()).toEqual(['MatMulNBits', 'MoE', 'QMoE']);
    expect(table.ops['com.microsoft'].QMoE.types.T).toEqual(['bfloat16', 'float16']);
  });
});

describe.each(SYNTHETIC_FAMILIES.map((family) => ({ family })))('$family: CUDA graphs', ({ family }: { family: SyntheticFamily }) => {
  let model: TinyModel;
  beforeAll(() => {
    model = writeTinyModel(cudaShapedOverrides(family), 2, family);
  });
  afterAll(() => model.remove());

  it.each([
    ['int4 (QMoE block 64, MatMulNBits, fp16)', cudaPrecision('int4')],
    ['fp16 weights (MoE, Gemm)', cudaPrecision('fp32')],
  ])('%s: every node has a CUDA kernel for its types', (_name, precision) => {
    const graphs = deviceGraphs(model, precision);
    expect(graphs.length).toBe(2 * loadModelSpec(model.dir).spec.numLayers + 1);
    for (const { file, bytes } of graphs) expect(checkCudaNodes(bytes, table), file).toEqual([]);
  });

  it('meets the QMoE constraints (sizes multiples of 64, block size, float16)', () => {
    expect(cudaPlanProblems(loadModelSpec(model.dir).spec, cudaPrecision('int4'))).toEqual([]);
  });
});

describe('what the CUDA checks catch', () => {
  it('QMoE with float32 activations has no CUDA kernel', () => {
    const model = writeTinyModel(cudaShapedOverrides('mixtral'), 2, 'mixtral');
    try {
      const problems = deviceGraphs(model, PRECISIONS.int4fp32).flatMap(({ bytes }) => checkCudaNodes(bytes, table));
      expect(problems.length).toBeGreaterThan(0);
      expect(problems.every((p) => p.op === 'com.microsoft:QMoE')).toBe(true);
    } finally {
      model.remove();
    }
  });

  it('an unknown op, or a known one on an unsupported type, is reported', () => {
    const extra = structuredClone(table);
    delete extra.ops['ai.onnx'].TopK;
    extra.ops['ai.onnx'].Sigmoid.types.T = ['float16'];
    const model = writeTinyModel({}, 2, 'deepseek_v3');
    try {
      const problems = deviceGraphs(model, PRECISIONS.fp32).flatMap(({ bytes }) => checkCudaNodes(bytes, extra));
      expect(problems.some((p) => p.op === 'ai.onnx:TopK' && /no CUDA kernel/.test(p.problem))).toBe(true);
      expect(problems.some((p) => p.op === 'ai.onnx:Sigmoid' && /float, not one of T = float16/.test(p.problem))).toBe(true);
    } finally {
      model.remove();
    }
  });

  it('the tiny presets (experts 32 wide) are refused for CUDA QMoE, naming the size', () => {
    const model = writeTinyModel({}, 2, 'olmoe');
    try {
      const problems = cudaPlanProblems(loadModelSpec(model.dir).spec, cudaPrecision('int4'));
      expect(problems).toEqual([`the expert intermediate size 32 is not a multiple of ${QMOE_CUDA.sizeMultiple}`]);
    } finally {
      model.remove();
    }
  });
});

describe('CUDA sessions', () => {
  it('list the CUDA provider alone and disable the CPU fallback', () => {
    const options = sessionOptions({ provider: 'cuda', deviceId: 1, intraOpThreads: 1 });
    expect(options.executionProviders).toEqual([{ name: 'cuda', deviceId: 1 }]);
    expect(options.extra).toMatchObject({ session: { disable_cpu_ep_fallback: '1' } });
    expect(sessionOptions({ provider: 'cpu', intraOpThreads: 1 }).executionProviders).toEqual(['cpu']);
  });

  it('the startup check fails with how to install the provider when it is missing (else passes)', () => {
    if (missingCudaLibraries().length === 0) {
      expect(() => checkCudaProvider(0)).not.toThrow();
      return;
    }
    let error: unknown;
    try {
      checkCudaProvider(0);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CudaProviderError);
    expect(String(error)).toMatch(/ONNXRUNTIME_NODE_INSTALL=true node node_modules\/onnxruntime-node\/script\/install\.js/);
    expect(String(error)).toMatch(/CUDA 12.*cuDNN 9/);
  });
});
