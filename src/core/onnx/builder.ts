/**
 * A small builder for ONNX graphs: used to build backward graphs, defense graphs and export
 * models, and by the tests to build models op by op.
 */
import { AttributeType, type AttributeProto, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto';
import { floatTensor, int64Tensor } from './tensor-proto';

export type AttrValue = number | string | number[] | TensorProto | { floats: number[] } | { ints: number[] };

/** Attributes: integers as `ints`/`i`, floats written `{ floats: [...] }` or via `f(x)`. */
export function attribute(name: string, value: AttrValue): AttributeProto {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') return Number.isInteger(value) ? { name, type: AttributeType.INT, i: value } : { name, type: AttributeType.FLOAT, f: value };
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: value.floats };
  if ('ints' in value) return { name, type: AttributeType.INTS, ints: value.ints };
  return { name, type: AttributeType.TENSOR, t: value };
}

/** A float attribute even when the value is a whole number (alpha = 1.0, say). */
export function floatAttr(name: string, value: number): AttributeProto {
  return { name, type: AttributeType.FLOAT, f: value };
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private counter = 0;

  constructor(private readonly prefix = '') {}

  /** A fresh tensor name. */
  fresh(hint: string): string {
    return `${this.prefix}${hint}_${this.counter++}`;
  }

  /** Adds a node; returns its output names (generated unless given). */
  node(op: string, inputs: string[], attrs: Record<string, AttrValue | AttributeProto> = {}, outputs: number | string[] = 1, domain?: string): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(op.toLowerCase())) : outputs;
    const attribute_ = Object.entries(attrs).map(([k, v]) => (isAttributeProto(v) ? { ...v, name: k } : attribute(k, v)));
    this.nodes.push({ opType: op, name: this.fresh(op), input: inputs, output: outs, attribute: attribute_, ...(domain ? { domain } : {}) });
    return outs;
  }

  /** One-output node. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue | AttributeProto> = {}): string {
    return this.node(op, inputs, attrs, 1)[0];
  }

  floatConst(hint: string, dims: number[], values: ArrayLike<number>): string {
    const name = this.fresh(hint);
    this.initializers.push(floatTensor(name, dims, values));
    return name;
  }

  scalar(value: number, hint = 'c'): string {
    return this.floatConst(hint, [], [value]);
  }

  int64Const(hint: string, values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh(hint);
    this.initializers.push(int64Tensor(name, dims, values));
    return name;
  }

  graph(name: string, inputs: ValueInfoProto[], outputs: ValueInfoProto[], extraInitializers: TensorProto[] = []): GraphProto {
    return { name, node: this.nodes, initializer: [...extraInitializers, ...this.initializers], input: inputs, output: outputs };
  }
}

function isAttributeProto(v: unknown): v is AttributeProto {
  return typeof v === 'object' && v !== null && 'type' in v && ('name' in v || 'f' in v || 'i' in v);
}

export function makeModel(graph: GraphProto, opset = 13, irVersion = opset >= 21 ? 10 : opset >= 15 ? 8 : 7): ModelProto {
  return { irVersion, producerName: 'robustness-lab', opsetImport: [{ domain: '', version: opset }], graph };
}
