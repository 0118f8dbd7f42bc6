// bench:scale's checkpoint writer, run as its own process so its peak memory is its own:
// argv = outDir shape [num_hidden_layers]. Writes nothing when the checkpoint is there.
import { ensureSyntheticCheckpoint, type RealShape } from '../../models/synthetic.ts';
import { progressPrinter } from '../../server/progress.ts';

const [outDir, shape, layers] = process.argv.slice(2);
ensureSyntheticCheckpoint({
  outDir,
  shape: shape as RealShape,
  configOverrides: layers ? { num_hidden_layers: Number(layers) } : {},
  onProgress: progressPrinter('writing the checkpoint'),
});
