import { describe, expect, it } from 'vitest';
import type { CompiledModel, Manifest } from '../../models/compile.ts';
import { SETTINGS } from '../../server/config.ts';
import { checkInt4Blocks, compiledInt4BlockSize, int4BlockServeArgs, PEER_INT4_BLOCK_SIZE } from '../../bench/peer/int4-blocks.ts';

const compiledWith = (manifest: Partial<Manifest> & { int4BlockSize?: number }): CompiledModel =>
  ({ dir: '/nowhere', manifest: manifest as Manifest, reused: true }) as CompiledModel;

describe("bench:peer holds moe-server's int4 blocks to Q4_0's", () => {
  it('is 32, the Q4_0 block', () => {
    expect(PEER_INT4_BLOCK_SIZE).toBe(32);
  });

  it('refuses a compiled model whose manifest records other blocks', () => {
    expect(() => checkInt4Blocks(compiledWith({ int4BlockSize: 64 }))).toThrow(/blocks of 64, Q4_0 blocks of 32/);
    expect(() => checkInt4Blocks(compiledWith({ int4BlockSize: 32 }))).not.toThrow();
  });

  it('takes a manifest without a block size, written before the option, as blocks of 32', () => {
    expect(compiledInt4BlockSize(compiledWith({}))).toBe(32);
  });

  it('asks the server for blocks of 32, a setting it has', () => {
    expect(int4BlockServeArgs()).toEqual(['--int4-block-size', '32']);
    expect(Object.values(SETTINGS).some((s: { flag: string }) => s.flag === 'int4-block-size')).toBe(true);
  });
});
