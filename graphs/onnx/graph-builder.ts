// A small builder over onnx-proto: named values in, nodes, initializers (inline or as
// external data appended to a weights file), and a serialised ModelProto out. onnx-proto is
// the protobufjs code generated from the ONNX schema and has no helpers of its own.
import onnxProto from 'onnx-proto';
import type { WeightsFileWriter } from './weights-file.ts';

const { onnx } = onnxProto;

export const DataType = onnx.TensorProto.DataType;
export type ElemType = 'float32' | 'int64' | 'int32' | 'uint8' | 'float16' | 'bool';

export const ELEM_TYPE: Record<ElemType, number> = {
  float32: DataType.FLOAT,
  int64: DataType.INT64,
  int32: DataType.INT32,
  uint8: DataType.UINT8,
  // Half-precision values travel as their bit patterns (Uint16Array).
  float16: DataType.FLOAT16,
  bool: DataType.BOOL,
};

export type Dim = number | string;
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };
export type TypedData = Float32Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

/** Opset of the default ONNX domain our graphs use; com.microsoft for contrib ops. */
export const ONNX_OPSET = 21;
export const MS_DOMAIN = 'com.microsoft';

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly usedNames = new Set<string>();
  private counter = 0;

  /**
   * @param weights where large initializers go; small ones (below inlineLimitBytes) stay in
   *   the model file, which keeps tiny constants readable and the external file aligned.
   */
  constructor(
    readonly name: string,
    private readonly weights: WeightsFileWriter | null = null,
    private readonly inlineLimitBytes = 1024,
  ) {}

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Marks an existing value as a graph output, renaming it through Identity when needed. */
  output(value: string, name: string, type: ElemType, dims: Dim[]): void {
    if (value !== name) this.node('Identity', [value], [name]);
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** A fresh, unique value name with a readable prefix. */
  fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.usedNames.has(name));
    this.usedNames.add(name);
    return name;
  }

  /** A Uint16Array holds float16 bit patterns. */
  initializer(prefix: string, data: TypedData, dims: number[]): string {
    const name = this.fresh(prefix);
    const tensor: onnxProto.onnx.ITensorProto = { name, dims, dataType: dataTypeOf(data) };
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (this.weights && bytes.byteLength > this.inlineLimitBytes) {
      const { offset, length } = this.weights.append(bytes);
      tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      tensor.externalData = [
        { key: 'location', value: this.weights.fileName },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(length) },
      ];
    } else {
      tensor.rawData = bytes.slice();
    }
    this.initializers.push(tensor);
    return name;
  }

  constInt64(values: number[]): string {
    return this.initializer('c', BigInt64Array.from(values.map(BigInt)), [values.length]);
  }

  constFloat(value: number): string {
    return this.initializer('c', Float32Array.of(value), []);
  }

  /** Adds a node; returns its output names (generated when a count is given). */
  node(opType: string, inputs: string[], outputs: string[] | number = 1, attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    const outNames = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase())) : outputs;
    if (typeof outputs !== 'number') outputs.forEach((n) => this.claim(n));
    this.nodes.push({
      opType,
      domain,
      input: inputs,
      output: outNames,
      name: this.fresh(`n_${opType}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outNames;
  }

  /** Single-output convenience over node(). */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.node(opType, inputs, 1, attrs, domain)[0];
  }

  toBytes(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 10,
      producerName: 'moe-server',
      opsetImport: [
        { domain: '', version: ONNX_OPSET },
        { domain: MS_DOMAIN, version: 1 },
      ],
      graph: {
        name: this.name,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  private claim(name: string): void {
    if (this.usedNames.has(name)) throw new Error(`graph ${this.name}: value "${name}" defined twice`);
    this.usedNames.add(name);
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function dataTypeOf(data: TypedData): number {
  if (data instanceof Float32Array) return DataType.FLOAT;
  if (data instanceof BigInt64Array) return DataType.INT64;
  if (data instanceof Int32Array) return DataType.INT32;
  if (data instanceof Uint16Array) return DataType.FLOAT16;
  return DataType.UINT8;
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}
