// Q4_0 is blocks of 32 weights, so the comparison is on identical 4-bit codes only while
// moe-server's int4 path also quantises in blocks of 32, which is not its default
// (`--int4-block-size`). The bench asks for 32 when it compiles and when it serves, and
// refuses to time a compiled model whose blocks are not 32: the guard's tolerance for int4 is
// wide enough that other blocks could pass it unnoticed.
import type { CompiledModel, CompileOptions } from '../../models/compile.ts';
import { Q4_0_BLOCK_SIZE } from '../gguf/q4-0.ts';

export const PEER_INT4_BLOCK_SIZE = Q4_0_BLOCK_SIZE;

/** Manifests written before the block size was an option always used blocks of 32. */
const BLOCK_SIZE_BEFORE_THE_OPTION = 32;

/** Spread into compileModel's options. */
export const int4BlockCompileOption = { int4BlockSize: PEER_INT4_BLOCK_SIZE } satisfies Partial<CompileOptions>;

/** `moe-server serve` arguments for blocks of 32. */
export function int4BlockServeArgs(): string[] {
  return ['--int4-block-size', String(PEER_INT4_BLOCK_SIZE)];
}

/** The block size a compiled int4 model uses, from its manifest. */
export function compiledInt4BlockSize(compiled: CompiledModel): number {
  return compiled.manifest.int4BlockSize ?? BLOCK_SIZE_BEFORE_THE_OPTION;
}

/** Throws unless a compiled int4 model quantises in Q4_0's blocks. */
export function checkInt4Blocks(compiled: CompiledModel): void {
  const blockSize = compiledInt4BlockSize(compiled);
  if (blockSize !== PEER_INT4_BLOCK_SIZE) {
    throw new Error(
      `moe-server's int4 model uses blocks of ${blockSize}, Q4_0 blocks of ${PEER_INT4_BLOCK_SIZE}: the 4-bit codes would differ ` +
        `(compile it with --int4-block-size ${PEER_INT4_BLOCK_SIZE})`,
    );
  }
}
