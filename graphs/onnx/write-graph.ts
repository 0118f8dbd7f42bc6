// Writes one graph: the model file and its external-weights file beside it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder } from './graph-builder.ts';
import { WeightsFileWriter } from './weights-file.ts';

export function writeGraph(dir: string, file: string, build: (b: GraphBuilder) => void): void {
  const weights = new WeightsFileWriter(join(dir, `${file}.data`));
  try {
    const b = new GraphBuilder(file, weights);
    build(b);
    writeFileSync(join(dir, file), b.toBytes());
  } finally {
    weights.close();
  }
}
