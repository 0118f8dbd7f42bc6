// Q4_0 is blocks of 32 weights, so the comparison is on identical 4-bit codes only while
// moe-server's int4 path also quantises in blocks of 32. main's int4 block is fixed at
// INT4_BLOCK_SIZE; issue #15's branch makes it a compile option and a server setting
// (--int4-block-size) with another default. The bench asks for 32 in both places where the
// option exists and refuses to time a compiled model whose blocks are not 32: the guard's
// tolerance for int4 is wide enough that other blocks could pass it unnoticed.
import { INT4_BLOCK_SIZE } from '../../graphs/ops/quantize.ts';
import type { CompiledModel } from '../../models/compile.ts';
import { SETTINGS } from '../../server/config.ts';
import { Q4_0_BLOCK_SIZE } from '../gguf/q4-0.ts';

export const PEER_INT4_BLOCK_SIZE = Q4_0_BLOCK_SIZE;

const SERVER_FLAG = 'int4-block-size';

/**
 * Spread into compileModel's options. Kept out of the object literal's own properties so it
 * type-checks where CompileOptions has no such field (main, where the block is always
 * INT4_BLOCK_SIZE and `checkInt4Blocks` is what holds it to 32).
 */
export const int4BlockCompileOption: Record<string, number> = { int4BlockSize: PEER_INT4_BLOCK_SIZE };

/** `moe-server serve` arguments for blocks of 32, where the server has the setting. */
export function int4BlockServeArgs(): string[] {
  const known = Object.values(SETTINGS).some((s: { flag: string }) => s.flag === SERVER_FLAG);
  return known ? [`--${SERVER_FLAG}`, String(PEER_INT4_BLOCK_SIZE)] : [];
}

/** The block size a compiled int4 model uses: its manifest's if it records one, else the fixed one. */
export function compiledInt4BlockSize(compiled: CompiledModel): number {
  const recorded = (compiled.manifest as { int4BlockSize?: number }).int4BlockSize;
  return recorded ?? INT4_BLOCK_SIZE;
}

/** Throws unless a compiled int4 model quantises in Q4_0's blocks. */
export function checkInt4Blocks(compiled: CompiledModel): void {
  const blockSize = compiledInt4BlockSize(compiled);
  if (blockSize !== PEER_INT4_BLOCK_SIZE) {
    throw new Error(
      `moe-server's int4 model uses blocks of ${blockSize}, Q4_0 blocks of ${PEER_INT4_BLOCK_SIZE}: the 4-bit codes would differ ` +
        `(compile it with blocks of ${PEER_INT4_BLOCK_SIZE})`,
    );
  }
}
