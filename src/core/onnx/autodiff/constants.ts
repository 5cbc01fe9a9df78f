/**
 * Values of constant tensors, folded in JS when a gradient rule needs them at build time (Slice
 * starts, Pad pads, Gather indices, Resize scales, reduction axes given as inputs, Pow exponents).
 * Covers initializers, Constant nodes and the small shape arithmetic exporters emit around them.
 */
import { attrInt, attrInts, attrTensor } from '../attributes';
import type { GraphProto, NodeProto, TensorProto } from '../proto';
import { tensorValues } from '../tensor-proto';
import type { Dim } from '../../../protocol/model';

export interface ConstTensor {
  dims: number[];
  values: number[];
}

export class ConstantValues {
  private readonly memo = new Map<string, ConstTensor | null>();
  private readonly producers = new Map<string, NodeProto>();
  private readonly inits = new Map<string, TensorProto>();

  /** `active` names tensors that depend on the input (never constant); `shapes` folds Shape of static tensors. */
  constructor(
    graph: GraphProto,
    private readonly active: (name: string) => boolean,
    private readonly shapes?: Map<string, Dim[]>,
  ) {
    for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) this.producers.set(o, n);
    for (const t of graph.initializer ?? []) this.inits.set(t.name ?? '', t);
  }

  get(name: string): ConstTensor | undefined {
    if (!name || this.active(name)) return undefined;
    if (this.memo.has(name)) return this.memo.get(name) ?? undefined;
    this.memo.set(name, null); // guards against cycles in malformed graphs
    let v: ConstTensor | undefined;
    try {
      const init = this.inits.get(name);
      v = init ? { dims: (init.dims ?? []).map(Number), values: Array.from(tensorValues(init)) } : this.evaluate(name);
    } catch {
      v = undefined;
    }
    this.memo.set(name, v ?? null);
    return v;
  }

  private evaluate(name: string): ConstTensor | undefined {
    const node = this.producers.get(name);
    if (!node) return undefined;
    const ins = (node.input ?? []).map((i) => (i ? this.get(i) : undefined));
    const [a, b] = ins;
    switch (node.opType) {
      case 'Constant':
        return constantNodeValue(node);
      case 'Identity':
        return a;
      case 'Cast':
        return a && { dims: a.dims, values: isIntegerType(attrInt(node, 'to', 1)) ? a.values.map(Math.trunc) : a.values };
      case 'Shape': {
        const dims = this.shapes?.get(node.input![0]);
        if (!dims) return undefined;
        const r = dims.length;
        const norm = (v: number) => Math.min(r, Math.max(0, v < 0 ? v + r : v));
        const part = dims.slice(norm(attrInt(node, 'start', 0)), norm(attrInt(node, 'end', r)));
        if (!part.every((d): d is number => typeof d === 'number')) return undefined;
        return { dims: [part.length], values: part };
      }
      case 'Size': {
        const dims = this.shapes?.get(node.input![0]);
        if (!dims || !dims.every((d): d is number => typeof d === 'number')) return undefined;
        return { dims: [], values: [dims.reduce((p, q) => p * q, 1)] };
      }
      case 'Unsqueeze':
      case 'Squeeze':
      case 'Reshape':
      case 'Flatten': {
        if (!a) return undefined;
        const dims = this.shapes?.get(name);
        return { dims: dims && dims.every((d): d is number => typeof d === 'number') ? dims : [a.values.length], values: a.values };
      }
      case 'Concat': {
        if (ins.some((t) => !t) || ins.some((t) => t!.dims.length > 1)) return undefined;
        const values = ins.flatMap((t) => t!.values);
        return { dims: [values.length], values };
      }
      case 'Gather': {
        if (!a || !b || a.dims.length !== 1) return undefined;
        const n = a.values.length;
        return { dims: b.dims, values: b.values.map((i) => a.values[i < 0 ? i + n : i]) };
      }
      case 'Neg':
        return a && { dims: a.dims, values: a.values.map((v) => -v) };
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div': {
        if (!a || !b) return undefined;
        const f = {
          Add: (x: number, y: number) => x + y,
          Sub: (x: number, y: number) => x - y,
          Mul: (x: number, y: number) => x * y,
          Div: (x: number, y: number) => x / y,
        }[node.opType];
        if (a.values.length === b.values.length) return { dims: a.dims, values: a.values.map((v, i) => f(v, b.values[i])) };
        if (b.values.length === 1) return { dims: a.dims, values: a.values.map((v) => f(v, b.values[0])) };
        if (a.values.length === 1) return { dims: b.dims, values: b.values.map((v) => f(a.values[0], v)) };
        return undefined;
      }
      case 'ConstantOfShape': {
        if (!a) return undefined;
        const t = attrTensor(node, 'value');
        const fill = t ? tensorValues(t)[0] : 0;
        const n = a.values.reduce((p, q) => p * q, 1);
        return { dims: a.values, values: new Array(n).fill(fill) };
      }
      default:
        return undefined;
    }
  }
}

function isIntegerType(dt: number): boolean {
  return [2, 3, 4, 5, 6, 7, 9, 12, 13].includes(dt);
}

function constantNodeValue(node: NodeProto): ConstTensor | undefined {
  const t = attrTensor(node, 'value');
  if (t) return { dims: (t.dims ?? []).map(Number), values: Array.from(tensorValues(t)) };
  for (const a of node.attribute ?? []) {
    if (a.name === 'value_float') return { dims: [], values: [a.f ?? 0] };
    if (a.name === 'value_int') return { dims: [], values: [a.i ?? 0] };
    if (a.name === 'value_floats') return { dims: [a.floats?.length ?? 0], values: a.floats ?? [] };
    if (a.name === 'value_ints') return { dims: [attrInts(node, 'value_ints')?.length ?? 0], values: a.ints ?? [] };
  }
  return undefined;
}
