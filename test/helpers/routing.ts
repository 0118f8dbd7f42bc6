// Expert routing as the float64 reference computes it, for checking what the server reports.
import { ReferenceDeepseek } from '../reference/deepseek-reference.ts';

/**
 * Per sequence, [token][MoE layer][k]: the prompt, then each generated token but the last fed
 * back one by one (the tokens the engine runs for a request).
 */
export function referenceRouting(dir: string, sequences: ReadonlyArray<{ prompt: number[]; generated: number[] }>): number[][][][] {
  const reference = ReferenceDeepseek.load(dir);
  return sequences.map(({ prompt, generated }) => {
    const seq = reference.newSequence();
    return [prompt, ...generated.slice(0, -1).map((t) => [t])].flatMap((tokens) => seq.forward(tokens).experts);
  });
}
