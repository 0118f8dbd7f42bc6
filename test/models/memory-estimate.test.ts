// Before a long compile: the sizes of a model's checkpoint, compiled graphs and serving memory,
// the refusal of a model the machine cannot serve, and 'auto' placement that never replicates
// past what fits.
import { describe, expect, it } from 'vitest';
import { checkServingFits, ModelTooLargeError, resolveExpertPlacement } from '../../models/compile-fit.ts';
import { estimateModelMemory, routedExpertWeights } from '../../models/memory-estimate.ts';
import { realShapePreset, type RealShape } from '../../models/real-shapes.ts';
import { familyFor } from '../../models/registry.ts';
import { resolveSynthetic } from '../../models/synthetic.ts';

function shape(name: RealShape) {
  const resolved = resolveSynthetic({ outDir: 'unused', shape: name });
  const family = familyFor(realShapePreset(name).family, 'config.json');
  const spec = family.parseConfig(resolved.config, 'config.json');
  return { spec, names: family.weightNames(spec) };
}

const GiB = 2 ** 30;

describe('memory estimate', () => {
  it('counts the published parameter totals and sizes at int4', () => {
    const v2 = shape('v2-lite');
    const e = estimateModelMemory(v2.spec, v2.names, { weights: 'int4', tensorParallel: 2, replicateExperts: false });
    expect(e.checkpointBytes / 2 / 1e9).toBeCloseTo(15.7, 1); // DeepSeek-V2-Lite: 15.7B
    // Blocks of 64: 0.5625 bytes a 4-bit weight on disk; held at 0.6875.
    expect(e.compiledBytes).toBeGreaterThan(e.quantisableWeights * 0.5625);
    expect(e.residentWeightBytes / e.quantisableWeights).toBeGreaterThan(0.6875);
    const q3 = shape('qwen3-30b-a3b');
    expect(
      estimateModelMemory(q3.spec, q3.names, { weights: 'int4', tensorParallel: 2, replicateExperts: false }).checkpointBytes / 2 / 1e9,
    ).toBeCloseTo(30.5, 1);
  });

  it('refuses a model this machine cannot serve, with the numbers, before compiling', () => {
    const mixtral = shape('mixtral-8x7b');
    const fit = { weights: 'int4' as const, tensorParallel: 2, memoryBytes: 24 * GiB };
    expect(() => checkServingFits(mixtral.spec, mixtral.names, 'split', fit)).toThrow(ModelTooLargeError);
    expect(() => checkServingFits(mixtral.spec, mixtral.names, 'split', fit)).toThrow(
      /needs about 3\d\.\d GiB .* this machine has 24\.0 GiB/,
    );
    const olmoe = shape('olmoe');
    expect(() => checkServingFits(olmoe.spec, olmoe.names, 'split', fit)).not.toThrow();
    expect(() => checkServingFits(olmoe.spec, olmoe.names, 'split', { ...fit, weights: 'fp32' })).toThrow(/try --weights int4/);
  });

  it("'auto' replicates only when the copies and the whole model with them fit", () => {
    const olmoe = shape('olmoe');
    const place = (memoryBytes: number) => resolveExpertPlacement(olmoe.spec, 'int4', 2, 'auto', { memoryBytes, names: olmoe.names });
    // OLMoE's routed experts held once more: about 4.1 GiB.
    const copies = routedExpertWeights(olmoe.spec) * 0.6875;
    expect(copies / GiB).toBeCloseTo(4.1, 0);
    expect(place(24 * GiB)).toBe('split');
    expect(place(8 * copies - GiB)).toBe('split'); // the copies just past an eighth
    expect(place(8 * copies + GiB)).toBe('replicate');
    expect(resolveExpertPlacement(olmoe.spec, 'int4', 1, 'replicate')).toBe('split');
  });
});
