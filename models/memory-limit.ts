// The memory this process may use: the machine's, or less in a container with a memory
// limit (os.totalmem() reports the host's memory there).
import { totalmem } from 'node:os';

/** `constrained`: process.constrainedMemory(), which is 0, undefined or about 2^64 without a limit, depending on the Node version. */
export function usableMemoryBytes(total: number = totalmem(), constrained: number | undefined = process.constrainedMemory()): number {
  return constrained !== undefined && constrained > 0 && constrained < total ? constrained : total;
}
