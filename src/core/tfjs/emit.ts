/**
 * The ONNX side of the TensorFlow.js converters: a graph writer whose values remember their layout.
 *
 * TensorFlow.js is NHWC; ONNX's Conv, pooling and BatchNormalization are NCHW. A rank-4 value may
 * be held as the tensor tfjs sees ('tf') or transposed to NCHW ('nchw'); ops that need NCHW ask
 * for it, element-wise ops keep whatever layout their inputs have, and a Transpose is emitted
 * only where a layout is asked for that the value does not have yet (once per value). So a
 * conv → relu → pool → conv chain stays NCHW, with one Transpose after the NHWC input and one
 * before the first op that needs the TensorFlow order (Flatten, Dense, Reshape).
 *
 * Node names are the user's: the node that writes a layer's (or TF node's) output carries its
 * name and so does its output tensor; helper nodes are named `<layer>/<suffix>`.
 */
import { attribute, floatAttr, type AttrValue } from '../onnx/builder';
import { DataType, type AttributeProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../onnx/proto';
import { floatTensor, int64Tensor } from '../onnx/tensor-proto';

export type Layout = 'tf' | 'nchw';
export type ValDtype = 'float32' | 'int64' | 'bool';

/** TF axis a of a rank-4 value is axis NCHW_AXIS[a] of its NCHW form. */
export const NCHW_AXIS = [0, 2, 3, 1];
export const TO_NCHW = [0, 3, 1, 2];
export const TO_NHWC = [0, 2, 3, 1];

/** A value of the converted graph: its TF-order shape and the ONNX tensors that hold it. */
export interface Val {
  /** TensorFlow-order static shape; -1 where unknown (the batch). */
  shape: number[];
  dtype: ValDtype;
  /** ONNX tensor names holding the value, per layout; the first one set is its home layout. */
  as: { tf?: string; nchw?: string; scalar?: string };
  /** The value itself when known at conversion time (constants, shape arithmetic), TF order. */
  konst?: Float64Array;
  /** Name base for materialised constants. */
  hint: string;
}

export const rankOf = (v: Val) => v.shape.length;
export const homeLayout = (v: Val): Layout => (v.as.tf !== undefined ? 'tf' : v.as.nchw !== undefined ? 'nchw' : 'tf');
export const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Transposes row-major data of `shape` by `perm` (numpy semantics). */
export function transposeData<T extends Float32Array | Float64Array>(data: T, shape: number[], perm: number[]): T {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStrides = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= shape[i];
  }
  const out = new (data.constructor as { new (n: number): T })(data.length);
  const idx = new Array<number>(rank).fill(0);
  const stride = perm.map((p) => inStrides[p]);
  for (let o = 0; o < data.length; o++) {
    let src = 0;
    for (let k = 0; k < rank; k++) src += idx[k] * stride[k];
    out[o] = data[src];
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < outShape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

/** Numpy broadcasting of two static shapes (-1 unknown). */
export function broadcastShapes(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1,
      y = b[b.length - rank + i] ?? 1;
    out.push(x === 1 ? y : y === 1 ? x : x === -1 ? y : x);
  }
  return out;
}

export type Attrs = Record<string, AttrValue | AttributeProto>;

function tensorValueInfo(name: string, dims: (number | string)[] | undefined, elemType = DataType.FLOAT): ValueInfoProto {
  const shape = dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined;
  return { name, type: { tensorType: { elemType, shape } } };
}
/** A float attribute even for whole numbers. */
export const f = (value: number): AttributeProto => floatAttr('', value);

export class OnnxWriter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly names = new Set<string>();
  private readonly inputs: { name: string; dims: (number | string)[]; dtype: number }[] = [];

  constructor(readonly batchParam = 'batch') {}

  /** `base`, or `base_1`, `base_2`, … whichever is free (node and tensor names share one space here). */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  /** A graph input in TensorFlow order; -1 dims become the symbolic batch. */
  input(name: string, shape: number[], dtype: ValDtype = 'float32'): Val {
    const n = this.unique(name);
    this.inputs.push({
      name: n,
      dims: shape.map((d, i) => (d < 0 ? (i === 0 ? this.batchParam : `${n}_dim${i}`) : d)),
      dtype: dtype === 'float32' ? DataType.FLOAT : DataType.INT64,
    });
    return { shape, dtype, as: { tf: n }, hint: n };
  }

  /** Emits a node named `name` (made unique); its outputs are `name`, `name:1`, … unless given. */
  node(op: string, inputs: string[], attrs: Attrs, name: string, outputs: number | string[] = 1): string[] {
    const nodeName = this.unique(name);
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, i) => (i === 0 ? nodeName : this.unique(`${nodeName}:${i}`)))
        : outputs.map((o) => this.unique(o));
    const attribute_ = Object.entries(attrs)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => (typeof v === 'object' && v !== null && 'type' in v ? { ...(v as AttributeProto), name: k } : attribute(k, v as AttrValue)));
    this.nodes.push({ name: nodeName, opType: op, input: inputs, output: outs, attribute: attribute_ });
    return outs;
  }

  op(op: string, inputs: string[], attrs: Attrs, name: string): string {
    return this.node(op, inputs, attrs, name, 1)[0];
  }

  floatInit(name: string, dims: number[], data: ArrayLike<number>): string {
    const n = this.unique(name);
    this.initializers.push(floatTensor(n, dims, data));
    return n;
  }

  int64Init(name: string, values: ArrayLike<number>, dims: number[] = [values.length]): string {
    const n = this.unique(name);
    this.initializers.push(int64Tensor(n, dims, Array.from(values)));
    return n;
  }

  /** A constant value (TF order) for the graph. */
  konst(hint: string, shape: number[], data: ArrayLike<number>, dtype: ValDtype = 'float32'): Val {
    return { shape, dtype, as: {}, konst: Float64Array.from(data), hint };
  }

  /** The ONNX tensor holding `v` in `layout` (rank-4 values only for 'nchw'): materialises constants, transposes once. */
  get(v: Val, layout: Layout = 'tf'): string {
    if (rankOf(v) !== 4) layout = 'tf';
    const have = v.as[layout];
    if (have !== undefined) return have;
    if (v.konst) {
      const data = layout === 'nchw' ? transposeData(v.konst, v.shape, TO_NCHW) : v.konst;
      const dims = layout === 'nchw' ? TO_NCHW.map((p) => v.shape[p]) : v.shape;
      const name = layout === 'nchw' ? `${v.hint}/nchw` : v.hint;
      return (v.as[layout] = this.constTensor(name, dims, data, v.dtype));
    }
    const from = layout === 'nchw' ? v.as.tf! : v.as.nchw!;
    return (v.as[layout] = this.op(
      'Transpose',
      [from],
      { perm: layout === 'nchw' ? TO_NCHW : TO_NHWC },
      `${from}/${layout === 'nchw' ? 'to_nchw' : 'to_nhwc'}`,
    ));
  }

  private constTensor(name: string, dims: number[], data: ArrayLike<number>, dtype: ValDtype): string {
    if (dtype === 'float32') return this.floatInit(name, dims, data);
    const n = this.int64Init(name, data, dims);
    if (dtype === 'bool') {
      // Booleans as int64 constants cast to bool (a graph initializer of type bool is fine too, but rare).
      return this.op('Cast', [n], { to: DataType.BOOL }, `${n}/bool`);
    }
    return n;
  }

  /**
   * A constant shaped to broadcast against a value held in `layout` of rank `rank`: in 'nchw' the
   * constant's TF shape is padded to rank 4 with leading ones and transposed to NCHW.
   */
  broadcastConst(c: Val, layout: Layout, rank: number): string {
    if (c.konst && c.konst.length === 1 && c.shape.length <= rank && c.shape.every((d) => d === 1)) {
      // One value: a rank-0 tensor broadcasts against any layout.
      if (c.shape.length === 0) return this.get(c, 'tf');
      c.as.scalar ??= this.get({ ...c, shape: [], as: {} }, 'tf');
      return c.as.scalar;
    }
    if (layout !== 'nchw' || rank !== 4) return this.get(c, 'tf');
    const padded = [...new Array(4 - c.shape.length).fill(1), ...c.shape];
    if (c.shape.length < 4 && c.konst) {
      const tmp: Val = { ...c, shape: padded, as: {}, hint: c.hint };
      const name = this.get(tmp, 'nchw');
      c.as.nchw ??= name;
      return name;
    }
    return this.get(c, 'nchw');
  }

  /** The layout element-wise ops on these operands should use: NCHW when every non-constant rank-4 operand is held in NCHW. */
  elementwiseLayout(vals: Val[]): Layout {
    const runtime = vals.filter((v) => !v.konst);
    if (runtime.length === 0) return 'tf';
    const rank = Math.max(...vals.map(rankOf));
    if (rank !== 4 || runtime.some((v) => rankOf(v) !== 4)) return 'tf';
    return runtime.some((v) => v.as.nchw !== undefined) ? 'nchw' : 'tf';
  }

  /** An element-wise op over operands of any layout (broadcasting by TF rules); output named `name`. */
  elementwise(op: string, vals: Val[], name: string, attrs: Attrs = {}, dtype?: ValDtype): Val {
    const shape = vals.map((v) => v.shape).reduce(broadcastShapes);
    const layout = this.elementwiseLayout(vals);
    const rank = shape.length;
    const inputs = vals.map((v) => (v.konst ? this.broadcastConst(v, layout, rank) : this.get(v, layout)));
    const out = this.op(op, inputs, attrs, name);
    return { shape, dtype: dtype ?? vals[0].dtype, as: { [layout]: out }, hint: out };
  }

  /** A value written by a node in a given layout. */
  val(name: string, shape: number[], layout: Layout, dtype: ValDtype = 'float32'): Val {
    return { shape, dtype, as: { [rankOf({ shape } as Val) === 4 ? layout : 'tf']: name }, hint: name };
  }

  /** The model: outputs in TF order, unused nodes and initializers dropped. */
  finish(
    outputs: { val: Val; name?: string }[],
    meta: { producer: string; producerVersion?: string; docString?: string; props: Record<string, string> },
  ): ModelProto {
    const outInfos = outputs.map(({ val }) => {
      let t = this.get(val, 'tf');
      if (this.inputs.some((i) => i.name === t) || this.initializers.some((i) => i.name === t)) t = this.op('Identity', [t], {}, `${t}/output`);
      const known = val.shape.slice(1).every((d) => d >= 0);
      return tensorValueInfo(
        t,
        known ? val.shape.map((d, i) => (i === 0 && d < 0 ? this.batchParam : d)) : undefined,
        val.dtype === 'float32' ? DataType.FLOAT : DataType.INT64,
      );
    });
    // Keep the nodes the outputs need (in order), and the initializers they read.
    const needed = new Set(outInfos.map((o) => o.name!));
    const keep = new Array<boolean>(this.nodes.length).fill(false);
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      if ((this.nodes[i].output ?? []).some((o) => needed.has(o))) {
        keep[i] = true;
        for (const inp of this.nodes[i].input ?? []) if (inp) needed.add(inp);
      }
    }
    const nodes = this.nodes.filter((_, i) => keep[i]);
    const initializer = this.initializers.filter((t) => needed.has(t.name!));
    const input = this.inputs.map((i) => {
      const info = tensorValueInfo(i.name, i.dims);
      info.type!.tensorType!.elemType = i.dtype;
      return info;
    });
    return {
      irVersion: 7,
      producerName: meta.producer,
      producerVersion: meta.producerVersion,
      docString: meta.docString,
      opsetImport: [{ domain: '', version: 13 }],
      graph: { name: 'tfjs', node: nodes, initializer, input, output: outInfos },
      metadataProps: Object.entries(meta.props).map(([key, value]) => ({ key, value })),
    };
  }
}
