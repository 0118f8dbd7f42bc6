// Checks a graph meant for the CUDA provider against ONNX Runtime's CUDA kernel table
// (cuda-op-kernels.json): every node's op must have a CUDA kernel registered for the graph's
// opset, and the types flowing into and out of it must be among those the kernel takes. Types
// are propagated from the graph inputs and initializers through each node by the table's own
// type variables (Cast by its `to` attribute), so the check needs no ONNX Runtime and no GPU.
import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

interface KernelEntry {
  inputs: string[];
  outputs: string[];
  since: number;
  until: number | null;
  /** Type variable -> allowed element types ("float", "float16", "int64", ...). */
  types: Record<string, string[]>;
  /** The last formal input repeats (Concat, Max). */
  variadic?: boolean;
}

export interface CudaKernelTable {
  source: string;
  opsets: Record<string, number>;
  ops: Record<string, Record<string, KernelEntry>>;
}

const ELEM_NAMES: Record<number, string> = {
  1: 'float',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'double',
  12: 'uint32',
  13: 'uint64',
  16: 'bfloat16',
};

/** Element type names: fixed formal types in the table are written as such names. */
const KNOWN_TYPES = new Set(Object.values(ELEM_NAMES));

export function loadCudaKernelTable(): CudaKernelTable {
  const raw: unknown = JSON.parse(readFileSync(new URL('./cuda-op-kernels.json', import.meta.url), 'utf8'));
  if (typeof raw !== 'object' || raw === null || !('ops' in raw) || !('opsets' in raw) || !('source' in raw)) {
    throw new Error('cuda-op-kernels.json: expected { source, opsets, ops }');
  }
  return raw as CudaKernelTable;
}

/** A node whose op or types the CUDA provider does not cover. */
export interface CudaNodeProblem {
  node: string;
  op: string;
  problem: string;
}

/** Every problem of the serialized model `bytes` (empty: every node has a CUDA kernel for its types). */
export function checkCudaNodes(bytes: Uint8Array, table: CudaKernelTable = loadCudaKernelTable()): CudaNodeProblem[] {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (!graph) return [{ node: '', op: '', problem: 'the model has no graph' }];
  const types = new Map<string, string>();
  for (const value of graph.input ?? []) types.set(value.name ?? '', ELEM_NAMES[value.type?.tensorType?.elemType ?? 0] ?? 'unknown');
  for (const init of graph.initializer ?? []) types.set(init.name ?? '', ELEM_NAMES[init.dataType ?? 0] ?? 'unknown');
  const opsets = new Map((model.opsetImport ?? []).map((o) => [o.domain || 'ai.onnx', Number(o.version)]));
  return (graph.node ?? []).flatMap((node) => checkNode(node, table, opsets, types));
}

/** One node's problems, in graph order; records the types of its outputs in `types`. */
function checkNode(
  node: onnxProto.onnx.INodeProto,
  table: CudaKernelTable,
  opsets: Map<string, number>,
  types: Map<string, string>,
): CudaNodeProblem[] {
  const domain = node.domain || 'ai.onnx';
  const where = { node: node.name ?? '', op: `${domain}:${node.opType}` };
  const entry = table.ops[domain]?.[node.opType ?? ''];
  if (!entry) return [{ ...where, problem: 'no CUDA kernel in the table' }];
  const problems: string[] = [];
  const opset = opsets.get(domain) ?? 0;
  if (opset < entry.since || (entry.until !== null && opset > entry.until)) {
    problems.push(`CUDA kernel registered for versions ${entry.since}-${entry.until ?? ''}, graph uses opset ${opset}`);
  }
  const bound = new Map<string, string>();
  const bind = (formal: string, actual: string, role: string): void => {
    const problem = bindType(entry, bound, formal, actual, role);
    if (problem !== null) problems.push(problem);
  };
  (node.input ?? []).forEach((name, i) => {
    if (name === '') return;
    if (i >= entry.inputs.length && !entry.variadic) problems.push(`input ${i} beyond the kernel's ${entry.inputs.length}`);
    else bind(entry.inputs[Math.min(i, entry.inputs.length - 1)], types.get(name) ?? 'unknown', `input ${i} (${name})`);
  });
  (node.output ?? []).forEach((name, i) => {
    const formal = entry.outputs[Math.min(i, entry.outputs.length - 1)];
    const type = outputType(node, formal, bound, entry);
    if (type === null) problems.push(`cannot tell the type of output ${i}`);
    else {
      bind(formal, type, `output ${i} (${name})`);
      types.set(name, type);
    }
  });
  return problems.map((problem) => ({ ...where, problem }));
}

/** Binds a formal type (variable or fixed) to an actual one; the problem, or null. */
function bindType(entry: KernelEntry, bound: Map<string, string>, formal: string, actual: string, role: string): string | null {
  if (KNOWN_TYPES.has(formal)) return formal === actual ? null : `${role} is ${actual}, the kernel takes ${formal}`;
  const allowed = entry.types[formal];
  const earlier = bound.get(formal);
  bound.set(formal, actual);
  if (allowed && !allowed.includes(actual)) return `${role} is ${actual}, not one of ${formal} = ${allowed.join(', ')}`;
  if (earlier !== undefined && earlier !== actual) return `${role} is ${actual} but ${formal} is already ${earlier}`;
  return null;
}

function outputType(node: onnxProto.onnx.INodeProto, formal: string, bound: Map<string, string>, entry: KernelEntry): string | null {
  if (KNOWN_TYPES.has(formal)) return formal;
  if (node.opType === 'Cast' && (node.domain ?? '') === '') {
    const to = node.attribute?.find((a) => a.name === 'to')?.i;
    return ELEM_NAMES[Number(to)] ?? null;
  }
  const known = bound.get(formal);
  if (known !== undefined) return known;
  const allowed = entry.types[formal];
  return allowed?.length === 1 ? allowed[0] : null;
}
