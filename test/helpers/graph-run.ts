// Builds a small graph with the project's builder and opens it as a real ONNX Runtime session.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../graphs/onnx/graph-builder.ts';
import { GraphSession, type SessionSettings } from '../../kernels/session.ts';

/** A session over the graph `build` makes; the model file is removed once it is loaded. */
export function openGraph(
  build: (b: GraphBuilder) => void,
  settings: SessionSettings = { provider: 'cpu', intraOpThreads: 1 },
): GraphSession {
  const dir = mkdtempSync(join(tmpdir(), 'moe-graph-'));
  try {
    const b = new GraphBuilder('test');
    build(b);
    const file = join(dir, 'graph.onnx');
    writeFileSync(file, b.toBytes());
    return new GraphSession(file, settings);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
