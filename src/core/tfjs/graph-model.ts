/**
 * TensorFlow.js graph models (format "graph-model": a TF GraphDef as JSON, constants in the weight
 * shards) to ONNX. One rule per TF op; constant and shape arithmetic is folded at conversion time
 * where its inputs are known, and otherwise emitted as int64 ONNX ops. Every node the outputs
 * need is checked before anything is built; all problems come back in one UserError.
 */
import { UserError } from '../errors';
import { DataType } from '../onnx/proto';
import { f, homeLayout, NCHW_AXIS, OnnxWriter, rankOf, sizeOf, TO_NCHW, transposeData, type Layout, type Val, type ValDtype } from './emit';
import { broadcastBinary, fround, gatherAxes, planStridedSlice, stridesOf } from './fold';
import { activation, axisIn, clip, convOutLength, windowAttrs } from './ops';
import { finishOutputs, type OutputPlan } from './outputs';
import { resize } from './layers-model';
import type { TfjsModelJson } from './files';
import type { WeightTensor } from './weights';

interface TfAttr {
  s?: string;
  i?: string | number;
  f?: number;
  b?: boolean;
  type?: string;
  shape?: { dim?: { size?: string | number }[]; unknownRank?: boolean };
  list?: { s?: string[]; i?: (string | number)[]; f?: number[]; type?: string[] };
  tensor?: TfTensorJson;
}

interface TfTensorJson {
  dtype?: string;
  tensorShape?: { dim?: { size?: string | number }[] };
  floatVal?: number[];
  intVal?: number[];
  int64Val?: (string | number)[];
  boolVal?: boolean[];
  tensorContent?: string;
}

interface TfNode {
  name: string;
  op: string;
  input: string[];
  attr: Record<string, TfAttr>;
}

const TF_TO_ONNX_HINT =
  'Convert the model to ONNX with tf2onnx (python -m tf2onnx.convert --saved-model … or --tfjs model.json) and open the .onnx file instead.';

const CONTROL_FLOW = new Set([
  'Enter',
  'Exit',
  'Merge',
  'Switch',
  'NextIteration',
  'LoopCond',
  'If',
  'StatelessIf',
  'While',
  'StatelessWhile',
  'TensorArrayV3',
  'TensorArrayReadV3',
  'TensorArrayWriteV3',
  'TensorArrayGatherV3',
  'TensorArrayScatterV3',
  'TensorArraySizeV3',
  'TensorListReserve',
  'TensorListFromTensor',
  'TensorListGetItem',
  'TensorListSetItem',
  'TensorListStack',
  'TensorListLength',
  'PartitionedCall',
  'StatefulPartitionedCall',
]);

// ---- attributes ------------------------------------------------------------------------------

const decode64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
const attrStr = (n: TfNode, k: string, d: string) => (n.attr[k]?.s !== undefined ? decode64(n.attr[k].s!) : d);
const attrInt = (n: TfNode, k: string, d: number) => (n.attr[k]?.i !== undefined ? Number(n.attr[k].i) : d);
const attrFloat = (n: TfNode, k: string, d: number) => (n.attr[k]?.f !== undefined ? Number(n.attr[k].f) : d);
const attrBool = (n: TfNode, k: string, d: boolean) => (n.attr[k]?.b !== undefined ? !!n.attr[k].b : d);
const attrInts = (n: TfNode, k: string): number[] | undefined => n.attr[k]?.list?.i?.map(Number) ?? (n.attr[k]?.list ? [] : undefined);
const attrStrs = (n: TfNode, k: string): string[] => (n.attr[k]?.list?.s ?? []).map(decode64);
const dims = (shape: { dim?: { size?: string | number }[] } | undefined): number[] | undefined => shape?.dim?.map((d) => Number(d.size ?? -1));

function dtypeOf(tf: string | undefined): ValDtype | undefined {
  switch (tf) {
    case 'DT_FLOAT':
    case 'float32':
      return 'float32';
    case 'DT_INT32':
    case 'DT_INT64':
    case 'int32':
      return 'int64';
    case 'DT_BOOL':
    case 'bool':
      return 'bool';
  }
  return undefined;
}

function parseRef(ref: string): { node: string; index: number } | undefined {
  if (ref.startsWith('^')) return undefined;
  const m = /^(.*?)(?::(\d+))?$/.exec(ref)!;
  return { node: m[1], index: m[2] ? Number(m[2]) : 0 };
}
const refKey = (ref: string) => {
  const r = parseRef(ref)!;
  return `${r.node}:${r.index}`;
};

/** An inline Const tensor (attr.value.tensor), as TF writes it in JSON. */
function inlineTensor(t: TfTensorJson, name: string): { shape: number[]; dtype: ValDtype; data: Float64Array } | undefined {
  const dtype = dtypeOf(t.dtype);
  if (!dtype) return undefined;
  const shape = dims(t.tensorShape) ?? [];
  const n = sizeOf(shape);
  let values: number[];
  if (t.tensorContent) {
    const b = Buffer.from(t.tensorContent, 'base64');
    const buf = new Uint8Array(b).buffer;
    values =
      t.dtype === 'DT_FLOAT'
        ? [...new Float32Array(buf)]
        : t.dtype === 'DT_INT32'
          ? [...new Int32Array(buf)]
          : t.dtype === 'DT_INT64'
            ? [...new BigInt64Array(buf)].map(Number)
            : [...new Uint8Array(buf)];
  } else {
    values = (t.floatVal ?? t.intVal ?? t.int64Val?.map(Number) ?? t.boolVal?.map((b) => (b ? 1 : 0)) ?? []).map(Number);
  }
  if (values.length !== n) {
    if (values.length === 1) values = new Array(n).fill(values[0]);
    else if (values.length === 0) values = new Array(n).fill(0);
    else throw new UserError(`Const '${name}' has ${values.length} values for shape [${shape}].`);
  }
  return { shape, dtype, data: Float64Array.from(values) };
}

// ---- rules ---------------------------------------------------------------------------------

interface GCtx {
  e: OnnxWriter;
  n: TfNode;
  name: string;
  ins: Val[];
}

interface GRule {
  /** Why the node cannot be converted (attributes), or undefined. */
  check?(n: TfNode): string | undefined;
  /** Inputs that must be constant (folded at conversion time). */
  konst?: (n: TfNode) => number[];
  /** Folds the node when every input is constant. */
  fold?(c: GCtx): Val | Val[] | undefined;
  convert(c: GCtx): Val | Val[];
}

const konstData = (v: Val) => v.konst!;
const numbers = (v: Val) => Array.from(v.konst!);
const NHWC_ONLY = (n: TfNode) => (attrStr(n, 'data_format', 'NHWC') !== 'NHWC' ? `data_format ${attrStr(n, 'data_format', '')} (only NHWC)` : undefined);

const FUSED_ACTIVATIONS = new Set(['relu', 'relu6', 'elu', 'leakyrelu', 'prelu', 'sigmoid', 'tanh']);

function checkFused(n: TfNode): string | undefined {
  const ops = attrStrs(n, 'fused_ops').map((s) => s.toLowerCase());
  if (ops.length === 0) return undefined;
  const [first, act] = ops;
  if (first === 'fusedbatchnorm') return 'fused_ops FusedBatchNorm (TensorFlow.js cannot run it either)';
  if (first !== 'biasadd' && !FUSED_ACTIVATIONS.has(first)) return `fused_ops [${ops.join(', ')}]`;
  if (act !== undefined && !FUSED_ACTIVATIONS.has(act)) return `fused activation ${act}`;
  if (ops.length > 2) return `fused_ops [${ops.join(', ')}]`;
  return undefined;
}

/** Bias add and activation of a fused conv / matmul (x already holds the product). `args` are the extra inputs. */
function fusedTail(c: GCtx, build: (name: string, bias: Val | undefined) => Val): Val {
  const ops = attrStrs(c.n, 'fused_ops').map((s) => s.toLowerCase());
  const args = c.ins.slice(2);
  let bias: Val | undefined, act: string | undefined, prelu: Val | undefined;
  if (ops[0] === 'biasadd') {
    bias = args[0];
    act = ops[1];
    prelu = args[1];
  } else {
    act = ops[0];
    prelu = args[0];
  }
  if (!act) return build(c.name, bias);
  const pre = build(`${c.name}/${c.n.op.replace(/^_/, '')}`, bias);
  if (act === 'prelu') return c.e.elementwise('PRelu', [pre, prelu!], c.name);
  if (act === 'leakyrelu') return activation(c.e, 'leakyrelu', pre, c.name, { alpha: attrFloat(c.n, 'leakyrelu_alpha', 0.2) });
  return activation(c.e, act, pre, c.name);
}

function strideAttr(n: TfNode): number[] {
  const s = attrInts(n, 'strides') ?? [1, 1, 1, 1];
  return [s[1] ?? 1, s[2] ?? 1];
}

function padSpec(n: TfNode): 'valid' | 'same' | number[] {
  const p = attrStr(n, 'padding', 'VALID').toUpperCase();
  if (p === 'SAME') return 'same';
  if (p === 'EXPLICIT') {
    const e = attrInts(n, 'explicit_paddings') ?? [];
    return [e[2] ?? 0, e[4] ?? 0, e[3] ?? 0, e[5] ?? 0];
  }
  return 'valid';
}

function checkPadding(n: TfNode): string | undefined {
  const p = attrStr(n, 'padding', 'VALID').toUpperCase();
  return ['SAME', 'VALID', 'EXPLICIT'].includes(p) ? undefined : `padding ${p}`;
}

function convNode(c: GCtx, depthwise: boolean, fused: boolean): Val {
  const e = c.e,
    x = c.ins[0],
    w = c.ins[1];
  const [kh, kw, cin, cm] = w.shape;
  const filter = depthwise
    ? { dims: [cin * cm, 1, kh, kw], data: transposeData(konstData(w), w.shape, [2, 3, 0, 1]) }
    : { dims: [cm, cin, kh, kw], data: transposeData(konstData(w), w.shape, [3, 2, 0, 1]) };
  const s = strideAttr(c.n);
  const dl = attrInts(c.n, 'dilations') ?? [1, 1, 1, 1];
  const d = [dl[1] ?? 1, dl[2] ?? 1];
  const pad = padSpec(c.n);
  const hw = [x.shape[1], x.shape[2]];
  const outLen = (i: number) => {
    if (Array.isArray(pad)) return hw[i] < 0 ? -1 : Math.floor((hw[i] + pad[i] + pad[i + 2] - (([kh, kw][i] - 1) * d[i] + 1)) / s[i]) + 1;
    return convOutLength(hw[i], [kh, kw][i], s[i], d[i], pad);
  };
  const outC = depthwise ? cin * cm : cm;
  const shape = [x.shape[0], outLen(0), outLen(1), outC];
  const build = (name: string, bias: Val | undefined): Val => {
    const ins = [e.get(x, 'nchw'), e.floatInit(`${w.hint}${depthwise ? '/depthwise_oihw' : '/oihw'}`, filter.dims, filter.data)];
    const biasIsVector = bias?.konst && rankOf(bias) === 1 && bias.shape[0] === outC;
    if (biasIsVector) ins.push(e.get(bias!));
    const out = e.val(
      e.op('Conv', ins, { ...windowAttrs(hw, [kh, kw], s, d, pad), group: depthwise ? cin : 1 }, bias && !biasIsVector ? `${name}/Conv` : name),
      shape,
      'nchw',
    );
    return bias && !biasIsVector ? e.elementwise('Add', [out, bias], name) : out;
  };
  return fused ? fusedTail(c, build) : build(c.name, undefined);
}

function matmulNode(c: GCtx, fused: boolean): Val {
  const e = c.e;
  const [a, b] = c.ins;
  const ta = attrBool(c.n, 'transpose_a', false),
    tb = attrBool(c.n, 'transpose_b', false);
  const m = ta ? a.shape[rankOf(a) - 1] : a.shape[rankOf(a) - 2];
  const nOut = tb ? b.shape[rankOf(b) - 2] : b.shape[rankOf(b) - 1];
  const shape = [...a.shape.slice(0, -2), m, nOut];
  const build = (name: string, bias: Val | undefined): Val => {
    if (rankOf(a) === 2 && rankOf(b) === 2 && (!bias || (bias.konst && rankOf(bias) <= 1))) {
      const ins = [e.get(a), e.get(b), ...(bias ? [e.get(bias)] : [])];
      return e.val(e.op('Gemm', ins, { transA: ta ? 1 : 0, transB: tb ? 1 : 0 }, name), shape, 'tf');
    }
    const tr = (v: Val, t: boolean, tag: string) => {
      if (!t) return e.get(v);
      const perm = [...Array(rankOf(v)).keys()];
      [perm[perm.length - 1], perm[perm.length - 2]] = [perm[perm.length - 2], perm[perm.length - 1]];
      return e.op('Transpose', [e.get(v)], { perm }, `${c.name}/transpose_${tag}`);
    };
    const mm = e.val(e.op('MatMul', [tr(a, ta, 'a'), tr(b, tb, 'b')], {}, bias ? `${name}/MatMul` : name), shape, 'tf');
    return bias ? e.elementwise('Add', [mm, bias], name) : mm;
  };
  return fused ? fusedTail(c, build) : build(c.name, undefined);
}

function poolNode(c: GCtx, op: 'MaxPool' | 'AveragePool'): Val {
  const x = c.ins[0];
  const k = attrInts(c.n, 'ksize') ?? [1, 2, 2, 1];
  const kernel = [k[1], k[2]],
    s = strideAttr(c.n),
    pad = padSpec(c.n);
  const hw = [x.shape[1], x.shape[2]];
  const out = c.e.op(op, [c.e.get(x, 'nchw')], windowAttrs(hw, kernel, s, [1, 1], pad, false), c.name);
  const len = (i: number) =>
    Array.isArray(pad) ? (hw[i] < 0 ? -1 : Math.floor((hw[i] + pad[i] + pad[i + 2] - kernel[i]) / s[i]) + 1) : convOutLength(hw[i], kernel[i], s[i], 1, pad);
  return c.e.val(out, [x.shape[0], len(0), len(1), x.shape[3]], 'nchw');
}

const BINARY: Record<string, { onnx: string; fn: (a: number, b: number) => number }> = {
  Add: { onnx: 'Add', fn: (a, b) => a + b },
  AddV2: { onnx: 'Add', fn: (a, b) => a + b },
  BiasAdd: { onnx: 'Add', fn: (a, b) => a + b },
  Sub: { onnx: 'Sub', fn: (a, b) => a - b },
  Mul: { onnx: 'Mul', fn: (a, b) => a * b },
  RealDiv: { onnx: 'Div', fn: (a, b) => a / b },
  Div: { onnx: 'Div', fn: (a, b) => a / b },
  Maximum: { onnx: 'Max', fn: Math.max },
  Minimum: { onnx: 'Min', fn: Math.min },
  Pow: { onnx: 'Pow', fn: (a, b) => a ** b },
  FloorDiv: { onnx: '', fn: (a, b) => Math.floor(a / b) },
  FloorMod: { onnx: '', fn: (a, b) => a - Math.floor(a / b) * b },
};

const UNARY: Record<string, { fn?: (x: number) => number; convert(c: GCtx): Val }> = {
  Relu: { fn: (x) => Math.max(x, 0), convert: (c) => c.e.elementwise('Relu', [c.ins[0]], c.name) },
  Relu6: { fn: (x) => Math.min(Math.max(x, 0), 6), convert: (c) => clip(c.e, c.ins[0], 0, 6, c.name) },
  Elu: { convert: (c) => activation(c.e, 'elu', c.ins[0], c.name) },
  Selu: { convert: (c) => activation(c.e, 'selu', c.ins[0], c.name) },
  LeakyRelu: { convert: (c) => activation(c.e, 'leakyrelu', c.ins[0], c.name, { alpha: attrFloat(c.n, 'alpha', 0.2) }) },
  Sigmoid: { convert: (c) => c.e.elementwise('Sigmoid', [c.ins[0]], c.name) },
  Tanh: { fn: Math.tanh, convert: (c) => c.e.elementwise('Tanh', [c.ins[0]], c.name) },
  Softplus: { convert: (c) => c.e.elementwise('Softplus', [c.ins[0]], c.name) },
  Softsign: { convert: (c) => activation(c.e, 'softsign', c.ins[0], c.name) },
  Softmax: { convert: (c) => activation(c.e, 'softmax', c.ins[0], c.name) },
  LogSoftmax: { convert: (c) => activation(c.e, 'logsoftmax', c.ins[0], c.name) },
  Sqrt: { fn: Math.sqrt, convert: (c) => c.e.elementwise('Sqrt', [c.ins[0]], c.name) },
  Rsqrt: { fn: (x) => 1 / Math.sqrt(x), convert: (c) => c.e.elementwise('Reciprocal', [c.e.elementwise('Sqrt', [c.ins[0]], `${c.name}/Sqrt`)], c.name) },
  Square: { fn: (x) => x * x, convert: (c) => c.e.elementwise('Mul', [c.ins[0], c.ins[0]], c.name) },
  Exp: { fn: Math.exp, convert: (c) => c.e.elementwise('Exp', [c.ins[0]], c.name) },
  Log: { fn: Math.log, convert: (c) => c.e.elementwise('Log', [c.ins[0]], c.name) },
  Neg: { fn: (x) => -x, convert: (c) => c.e.elementwise('Neg', [c.ins[0]], c.name) },
  Abs: { fn: Math.abs, convert: (c) => c.e.elementwise('Abs', [c.ins[0]], c.name) },
  Reciprocal: { fn: (x) => 1 / x, convert: (c) => c.e.elementwise('Reciprocal', [c.ins[0]], c.name) },
  Inv: { fn: (x) => 1 / x, convert: (c) => c.e.elementwise('Reciprocal', [c.ins[0]], c.name) },
};

function foldVal(c: GCtx, shape: number[], data: ArrayLike<number>, dtype: ValDtype): Val {
  const values = dtype === 'float32' ? Float64Array.from(data, fround) : Float64Array.from(data);
  return c.e.konst(c.name, shape, values, dtype);
}

/** Axes input (scalar or vector) normalised to [0, rank). */
function axesOf(v: Val, rank: number): number[] {
  return numbers(v).map((a) => (a < 0 ? a + rank : a));
}

function reduceNode(c: GCtx, op: 'ReduceMean' | 'ReduceSum' | 'ReduceMax' | 'ReduceMin' | 'ReduceProd'): Val {
  const e = c.e,
    x = c.ins[0];
  const rank = rankOf(x);
  const axes = [...new Set(axesOf(c.ins[1], rank))].sort((p, q) => p - q);
  const keep = attrBool(c.n, 'keep_dims', false);
  const shape = keep ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
  // Spatial mean / max of an image: the global pools (what the autodiff differentiates best).
  if (rank === 4 && axes.join() === '1,2' && (op === 'ReduceMean' || op === 'ReduceMax')) {
    const g = op === 'ReduceMean' ? 'GlobalAveragePool' : 'GlobalMaxPool';
    if (keep) return e.val(e.op(g, [e.get(x, 'nchw')], {}, c.name), shape, 'nchw');
    const pooled = e.op(g, [e.get(x, 'nchw')], {}, `${c.name}/${g}`);
    return e.val(e.op('Flatten', [pooled], { axis: 1 }, c.name), shape, 'tf');
  }
  let L: Layout = homeLayout(x);
  if (L === 'nchw' && !keep) {
    const remaining = [0, 1, 2, 3].filter((a) => !axes.includes(a)).map((a) => NCHW_AXIS[a]);
    if (remaining.some((a, i) => i > 0 && a < remaining[i - 1])) L = 'tf';
  }
  const onnxAxes = axes.map((a) => axisIn(x, a, L));
  const out =
    op === 'ReduceSum'
      ? e.op(op, [e.get(x, L), e.int64Init(`${c.name}/axes`, onnxAxes)], { keepdims: keep ? 1 : 0 }, c.name)
      : e.op(op, [e.get(x, L)], { axes: onnxAxes, keepdims: keep ? 1 : 0 }, c.name);
  return e.val(out, shape, keep ? L : 'tf', x.dtype);
}

function reduceFold(c: GCtx, fn: (vals: number[]) => number): Val {
  const x = c.ins[0];
  const rank = rankOf(x);
  const axes = axesOf(c.ins[1], rank);
  const keep = attrBool(c.n, 'keep_dims', false);
  const outFull = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const groups = new Map<number, number[]>();
  const str = stridesOf(x.shape),
    ostr = stridesOf(outFull);
  const data = konstData(x);
  for (let i = 0; i < data.length; i++) {
    let o = 0;
    for (let k = 0; k < rank; k++) if (!axes.includes(k)) o += (Math.floor(i / str[k]) % x.shape[k]) * ostr[k];
    const list = groups.get(o) ?? [];
    list.push(data[i]);
    groups.set(o, list);
  }
  const out = Array.from({ length: sizeOf(outFull) }, (_, i) => fn(groups.get(i) ?? []));
  return foldVal(c, keep ? outFull : x.shape.filter((_, i) => !axes.includes(i)), out, x.dtype);
}

/** Reshape to a constant or runtime shape (TF order). */
function reshapeTo(c: GCtx, x: Val, target: Val, name = c.name): Val {
  const e = c.e;
  if (target.konst) {
    const t = numbers(target);
    const known = x.shape.every((d) => d >= 0) ? sizeOf(x.shape) : -1;
    const rest = sizeOf(t.filter((d) => d !== -1));
    const shape = t.map((d) => (d === -1 ? (known >= 0 && rest > 0 ? known / rest : -1) : d));
    return e.val(e.op('Reshape', [e.get(x), e.int64Init(`${name}/shape`, t)], {}, name), shape, 'tf', x.dtype);
  }
  return e.val(e.op('Reshape', [e.get(x), e.get(target)], {}, name), new Array(target.shape[0] ?? 0).fill(-1), 'tf', x.dtype);
}

const SLICE_ATTRS = (n: TfNode) => ({
  beginMask: attrInt(n, 'begin_mask', 0),
  endMask: attrInt(n, 'end_mask', 0),
  ellipsisMask: attrInt(n, 'ellipsis_mask', 0),
  newAxisMask: attrInt(n, 'new_axis_mask', 0),
  shrinkAxisMask: attrInt(n, 'shrink_axis_mask', 0),
});

function stridedSlice(c: GCtx): Val {
  const e = c.e,
    x = c.ins[0];
  const plan = planStridedSlice(x.shape, { begin: numbers(c.ins[1]), end: numbers(c.ins[2]), strides: numbers(c.ins[3]), ...SLICE_ATTRS(c.n) });
  if (x.konst && plan.indices) return foldVal(c, plan.shape, gatherAxes(konstData(x), x.shape, plan.indices), x.dtype);
  const shrink = plan.axes.filter((a) => a.shrink).map((a) => a.axis);
  const last = !shrink.length && !plan.newAxes.length;
  let t = e.op(
    'Slice',
    [
      e.get(x),
      e.int64Init(
        `${c.name}/starts`,
        plan.axes.map((a) => a.start),
      ),
      e.int64Init(
        `${c.name}/ends`,
        plan.axes.map((a) => a.end),
      ),
      e.int64Init(
        `${c.name}/axes`,
        plan.axes.map((a) => a.axis),
      ),
      e.int64Init(
        `${c.name}/steps`,
        plan.axes.map((a) => a.step),
      ),
    ],
    {},
    last ? c.name : `${c.name}/Slice`,
  );
  if (shrink.length) t = e.op('Squeeze', [t, e.int64Init(`${c.name}/shrink_axes`, shrink)], {}, plan.newAxes.length ? `${c.name}/Squeeze` : c.name);
  if (plan.newAxes.length) t = e.op('Unsqueeze', [t, e.int64Init(`${c.name}/new_axes`, plan.newAxes)], {}, c.name);
  return e.val(t, plan.shape, 'tf', x.dtype);
}

function concatNode(c: GCtx, vals: Val[], axisVal: Val): Val {
  const e = c.e;
  const rank = rankOf(vals[0]);
  const a = axesOf(axisVal, rank)[0];
  const shape = [...vals[0].shape];
  shape[a] = vals.some((v) => v.shape[a] < 0) ? -1 : vals.reduce((s, v) => s + v.shape[a], 0);
  if (vals.every((v) => v.konst)) {
    const outer = sizeOf(shape.slice(0, a));
    const out: number[] = [];
    for (let o = 0; o < outer; o++) {
      for (const v of vals) {
        const inner = sizeOf(v.shape.slice(a));
        out.push(...konstData(v).subarray(o * inner, (o + 1) * inner));
      }
    }
    return foldVal(c, shape, out, vals[0].dtype);
  }
  const L: Layout = rank === 4 && vals.every((v) => v.konst || v.as.nchw !== undefined) ? 'nchw' : 'tf';
  return e.val(
    e.op(
      'Concat',
      vals.map((v) => e.get(v, L)),
      { axis: L === 'nchw' ? NCHW_AXIS[a] : a },
      c.name,
    ),
    shape,
    L,
    vals[0].dtype,
  );
}

function packNode(c: GCtx): Val {
  const e = c.e,
    vals = c.ins;
  const rank = rankOf(vals[0]) + 1;
  let a = attrInt(c.n, 'axis', 0);
  if (a < 0) a += rank;
  const shape = [...vals[0].shape];
  shape.splice(a, 0, vals.length);
  if (vals.every((v) => v.konst)) {
    const expanded = vals.map((v) => ({ ...v, shape: [...v.shape.slice(0, a), 1, ...v.shape.slice(a)] }));
    return concatNode(c, expanded, e.konst(`${c.name}/axis`, [], [a], 'int64'));
  }
  const axes = e.int64Init(`${c.name}/axis`, [a]);
  const parts = vals.map((v, i) => e.op('Unsqueeze', [e.get(v), axes], {}, `${c.name}/Unsqueeze${i}`));
  return e.val(e.op('Concat', parts, { axis: a }, c.name), shape, 'tf', vals[0].dtype);
}

function padNode(c: GCtx, mode: 'constant' | 'reflect'): Val {
  const e = c.e,
    x = c.ins[0];
  const p = numbers(c.ins[1]);
  const rank = rankOf(x);
  const L = homeLayout(x);
  const perm = L === 'nchw' && rank === 4 ? TO_NCHW : [...Array(rank).keys()];
  const pads = [...perm.map((a) => p[2 * a]), ...perm.map((a) => p[2 * a + 1])];
  const ins = [e.get(x, L), e.int64Init(`${c.name}/pads`, pads)];
  if (c.ins[2]) ins.push(e.get(c.ins[2]));
  const shape = x.shape.map((d, i) => (d < 0 ? -1 : d + p[2 * i] + p[2 * i + 1]));
  return e.val(e.op('Pad', ins, { mode }, c.name), shape, L);
}

function resizeNode(c: GCtx, mode: 'linear' | 'nearest'): Val {
  const x = c.ins[0];
  const [h, w] = numbers(c.ins[1]);
  const align = attrBool(c.n, 'align_corners', false),
    half = attrBool(c.n, 'half_pixel_centers', false);
  const integral = x.shape[1] > 0 && x.shape[2] > 0 && h % x.shape[1] === 0 && w % x.shape[2] === 0;
  return resize(c.e, x, [h, w], integral ? [h / x.shape[1], w / x.shape[2]] : [-1, -1], mode, align, half, c.name);
}

const RULES: Record<string, GRule> = {
  Identity: { convert: (c) => c.ins[0] },
  Snapshot: { convert: (c) => c.ins[0] },
  StopGradient: { convert: (c) => c.ins[0] },
  PreventGradient: { convert: (c) => c.ins[0] },
  IdentityN: { convert: (c) => c.ins },
  NoOp: { convert: () => [] },
  Conv2D: { check: (n) => NHWC_ONLY(n) ?? checkPadding(n), konst: () => [1], convert: (c) => convNode(c, false, false) },
  _FusedConv2D: { check: (n) => NHWC_ONLY(n) ?? checkPadding(n) ?? checkFused(n), konst: () => [1], convert: (c) => convNode(c, false, true) },
  DepthwiseConv2dNative: { check: (n) => NHWC_ONLY(n) ?? checkPadding(n), konst: () => [1], convert: (c) => convNode(c, true, false) },
  FusedDepthwiseConv2dNative: { check: (n) => NHWC_ONLY(n) ?? checkPadding(n) ?? checkFused(n), konst: () => [1], convert: (c) => convNode(c, true, true) },
  MatMul: { convert: (c) => matmulNode(c, false) },
  _FusedMatMul: { check: checkFused, convert: (c) => matmulNode(c, true) },
  MaxPool: { check: (n) => NHWC_ONLY(n) ?? checkPadding(n), convert: (c) => poolNode(c, 'MaxPool') },
  AvgPool: { check: (n) => NHWC_ONLY(n) ?? checkPadding(n), convert: (c) => poolNode(c, 'AveragePool') },
  Prelu: { convert: (c) => c.e.elementwise('PRelu', [c.ins[0], c.ins[1]], c.name) },
  AddN: {
    fold: (c) =>
      c.ins.slice(1).reduce((acc, v) => {
        const r = broadcastBinary(konstData(acc), acc.shape, konstData(v), v.shape, (a, b) => a + b);
        return foldVal(c, r.shape, r.data, acc.dtype);
      }, c.ins[0]),
    convert: (c) => (c.ins.length === 1 ? c.ins[0] : c.e.elementwise('Sum', c.ins, c.name)),
  },
  Mean: { konst: () => [1], fold: (c) => reduceFold(c, (v) => v.reduce((a, b) => a + b, 0) / v.length), convert: (c) => reduceNode(c, 'ReduceMean') },
  Sum: { konst: () => [1], fold: (c) => reduceFold(c, (v) => v.reduce((a, b) => a + b, 0)), convert: (c) => reduceNode(c, 'ReduceSum') },
  Max: { konst: () => [1], fold: (c) => reduceFold(c, (v) => Math.max(...v)), convert: (c) => reduceNode(c, 'ReduceMax') },
  Min: { konst: () => [1], fold: (c) => reduceFold(c, (v) => Math.min(...v)), convert: (c) => reduceNode(c, 'ReduceMin') },
  Prod: { konst: () => [1], fold: (c) => reduceFold(c, (v) => v.reduce((a, b) => a * b, 1)), convert: (c) => reduceNode(c, 'ReduceProd') },
  Reshape: {
    fold: (c) => reshapeFold(c),
    convert: (c) => reshapeTo(c, c.ins[0], c.ins[1]),
  },
  Squeeze: {
    fold: (c) => foldVal(c, squeezeShape(c), konstData(c.ins[0]), c.ins[0].dtype),
    convert: (c) => {
      const x = c.ins[0];
      const axes = squeezeAxes(c);
      return c.e.val(c.e.op('Squeeze', [c.e.get(x), c.e.int64Init(`${c.name}/axes`, axes)], {}, c.name), squeezeShape(c), 'tf', x.dtype);
    },
  },
  ExpandDims: {
    konst: () => [1],
    fold: (c) => foldVal(c, expandShape(c), konstData(c.ins[0]), c.ins[0].dtype),
    convert: (c) => {
      const x = c.ins[0];
      return c.e.val(c.e.op('Unsqueeze', [c.e.get(x), c.e.int64Init(`${c.name}/axes`, [expandAxis(c)])], {}, c.name), expandShape(c), 'tf', x.dtype);
    },
  },
  ConcatV2: {
    konst: (n) => [n.input.filter((i) => !i.startsWith('^')).length - 1],
    convert: (c) => concatNode(c, c.ins.slice(0, -1), c.ins[c.ins.length - 1]),
  },
  Concat: { konst: () => [0], convert: (c) => concatNode(c, c.ins.slice(1), c.ins[0]) },
  Pack: { convert: (c) => packNode(c) },
  Pad: { konst: () => [1], convert: (c) => padNode(c, 'constant') },
  PadV2: { konst: () => [1, 2], convert: (c) => padNode(c, 'constant') },
  MirrorPad: {
    konst: () => [1],
    check: (n) =>
      attrStr(n, 'mode', 'REFLECT').toUpperCase() === 'REFLECT' ? undefined : `mode ${attrStr(n, 'mode', '')} (only REFLECT has an ONNX equivalent)`,
    convert: (c) => padNode(c, 'reflect'),
  },
  FusedBatchNorm: { check: NHWC_ONLY, konst: () => [1, 2, 3, 4], convert: (c) => fusedBatchNorm(c) },
  FusedBatchNormV2: { check: NHWC_ONLY, konst: () => [1, 2, 3, 4], convert: (c) => fusedBatchNorm(c) },
  FusedBatchNormV3: { check: NHWC_ONLY, konst: () => [1, 2, 3, 4], convert: (c) => fusedBatchNorm(c) },
  Transpose: {
    konst: () => [1],
    fold: (c) => {
      const x = c.ins[0],
        perm = numbers(c.ins[1]);
      return foldVal(
        c,
        perm.map((p) => x.shape[p]),
        transposeData(konstData(x), x.shape, perm),
        x.dtype,
      );
    },
    convert: (c) => {
      const x = c.ins[0],
        perm = numbers(c.ins[1]);
      return c.e.val(
        c.e.op('Transpose', [c.e.get(x)], { perm }, c.name),
        perm.map((p) => x.shape[p]),
        'tf',
        x.dtype,
      );
    },
  },
  StridedSlice: { konst: () => [1, 2, 3], convert: stridedSlice },
  Shape: {
    convert: (c) => {
      const x = c.ins[0];
      if (x.shape.every((d) => d >= 0)) return foldVal(c, [rankOf(x)], x.shape, 'int64');
      return c.e.val(c.e.op('Shape', [c.e.get(x)], {}, c.name), [rankOf(x)], 'tf', 'int64');
    },
  },
  Cast: {
    check: (n) => (dtypeOf(n.attr.DstT?.type) ? undefined : `cast to ${n.attr.DstT?.type}`),
    fold: (c) =>
      foldVal(
        c,
        c.ins[0].shape,
        Array.from(konstData(c.ins[0]), dtypeOf(c.n.attr.DstT?.type) === 'float32' ? (x) => x : Math.trunc),
        dtypeOf(c.n.attr.DstT?.type)!,
      ),
    convert: (c) => {
      const to = dtypeOf(c.n.attr.DstT?.type)!;
      const x = c.ins[0];
      if (to === x.dtype) return x;
      const L = homeLayout(x);
      const out = c.e.op('Cast', [c.e.get(x, L)], { to: to === 'float32' ? DataType.FLOAT : to === 'bool' ? DataType.BOOL : DataType.INT64 }, c.name);
      return c.e.val(out, x.shape, L, to);
    },
  },
  ResizeBilinear: { konst: () => [1], convert: (c) => resizeNode(c, 'linear') },
  ResizeNearestNeighbor: { konst: () => [1], convert: (c) => resizeNode(c, 'nearest') },
};

for (const [op, b] of Object.entries(BINARY)) {
  RULES[op] = {
    check: op === 'BiasAdd' ? NHWC_ONLY : undefined,
    fold: (c) => {
      const [a, bb] = c.ins;
      const r = broadcastBinary(
        konstData(a),
        a.shape,
        konstData(bb),
        bb.shape,
        a.dtype === 'int64' && (op === 'RealDiv' || op === 'Div') ? (x, y) => Math.trunc(x / y) : b.fn,
      );
      return foldVal(c, r.shape, r.data, a.dtype);
    },
    convert: (c) => {
      if (!b.onnx) throw new UserError(`Node '${c.n.name}' (${op}) computes on values only known at run time.`, TF_TO_ONNX_HINT);
      return c.e.elementwise(b.onnx, c.ins, c.name);
    },
  };
}
for (const [op, u] of Object.entries(UNARY)) {
  RULES[op] = { fold: u.fn ? (c) => foldVal(c, c.ins[0].shape, Array.from(konstData(c.ins[0]), u.fn!), c.ins[0].dtype) : undefined, convert: u.convert };
}

function reshapeFold(c: GCtx): Val | undefined {
  const x = c.ins[0];
  const t = numbers(c.ins[1]);
  const rest = sizeOf(t.filter((d) => d !== -1));
  return foldVal(
    c,
    t.map((d) => (d === -1 ? sizeOf(x.shape) / rest : d)),
    konstData(x),
    x.dtype,
  );
}

function squeezeAxes(c: GCtx): number[] {
  const x = c.ins[0];
  const given = attrInts(c.n, 'squeeze_dims') ?? attrInts(c.n, 'axis') ?? [];
  if (given.length) return given.map((a) => (a < 0 ? a + rankOf(x) : a));
  return x.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
}
const squeezeShape = (c: GCtx) => {
  const axes = squeezeAxes(c);
  return c.ins[0].shape.filter((_, i) => !axes.includes(i));
};
const expandAxis = (c: GCtx) => {
  const a = numbers(c.ins[1])[0];
  return a < 0 ? a + rankOf(c.ins[0]) + 1 : a;
};
const expandShape = (c: GCtx) => {
  const s = [...c.ins[0].shape];
  s.splice(expandAxis(c), 0, 1);
  return s;
};

function fusedBatchNorm(c: GCtx): Val[] {
  const e = c.e,
    x = c.ins[0];
  const [scale, offset, mean, variance] = c.ins.slice(1, 5);
  const eps = attrFloat(c.n, 'epsilon', 1e-3);
  const L: Layout = rankOf(x) === 4 ? 'nchw' : 'tf';
  const out = e.op('BatchNormalization', [e.get(x, L), e.get(scale), e.get(offset), e.get(mean), e.get(variance)], { epsilon: f(eps) }, c.name);
  return [e.val(out, x.shape, L)];
}

// ---- the converter ---------------------------------------------------------------------------

interface Signature {
  inputs?: Record<string, { name?: string; dtype?: string; tensorShape?: { dim?: { size?: string | number }[] } }>;
  outputs?: Record<string, { name?: string }>;
}

export function convertGraphModel(
  json: TfjsModelJson,
  weights: Map<string, WeightTensor>,
  where: string,
  meta: { producer: string; producerVersion?: string },
): { model: ReturnType<OnnxWriter['finish']>; outputNote: string } {
  const topo = json.modelTopology as { node?: Partial<TfNode>[]; library?: { function?: unknown[] } };
  if (!topo || !Array.isArray(topo.node)) throw new UserError(`${where}: the graph model has no node list (modelTopology.node).`);
  const nodes: TfNode[] = topo.node.map((n, i) => ({
    name: String(n.name ?? `node_${i}`),
    op: String(n.op ?? ''),
    input: (n.input ?? []).map(String),
    attr: (n.attr ?? {}) as Record<string, TfAttr>,
  }));
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const signature = (json.signature ?? (json.userDefinedMetadata?.signature as Signature | undefined)) as Signature | undefined;

  // Outputs: the signature's, else every node nothing reads.
  let outputRefs = Object.values(signature?.outputs ?? {})
    .map((o) => o.name)
    .filter((n): n is string => !!n);
  if (outputRefs.length === 0) {
    const read = new Set(nodes.flatMap((n) => n.input.map((i) => parseRef(i)?.node).filter(Boolean)));
    outputRefs = nodes.filter((n) => !read.has(n.name) && !['Const', 'NoOp', 'Placeholder'].includes(n.op)).map((n) => n.name);
  }
  const problems: string[] = [];
  for (const r of outputRefs) if (!byName.has(parseRef(r)!.node)) problems.push(`output '${r}' is not a node of the graph`);

  // The nodes the outputs need, in dependency order.
  const order: TfNode[] = [];
  const state = new Map<string, 1 | 2>();
  const visit = (name: string) => {
    const st = state.get(name);
    if (st === 2) return;
    if (st === 1) {
      problems.push(`node '${name}' is part of a cycle (control flow)`);
      return;
    }
    const n = byName.get(name);
    if (!n) {
      problems.push(`input '${name}' is not a node of the graph`);
      state.set(name, 2);
      return;
    }
    state.set(name, 1);
    const stack = n.input.map(parseRef).filter((r): r is { node: string; index: number } => !!r);
    for (const r of stack) visit(r.node);
    state.set(name, 2);
    order.push(n);
  };
  if (!problems.length) for (const r of outputRefs) visit(parseRef(r)!.node);

  // Constant-ness (for the inputs that must be known at conversion time) and checks.
  const isKonst = new Map<string, boolean>();
  const unsupported = new Map<string, string[]>();
  for (const n of order) {
    const dataIns = n.input.map(parseRef).filter((r): r is { node: string; index: number } => !!r);
    if (n.op === 'Const') {
      isKonst.set(n.name, true);
      if (!weights.has(n.name) && !(n.attr.value?.tensor && inlineTensor(n.attr.value.tensor, n.name))) {
        const w = n.attr.value?.tensor?.dtype ?? n.attr.dtype?.type;
        problems.push(`Const '${n.name}': no value in the weights manifest${w ? ` (dtype ${w})` : ''}`);
      }
      continue;
    }
    if (n.op === 'Placeholder' || n.op === 'PlaceholderWithDefault') {
      isKonst.set(n.name, false);
      const dt = n.attr.dtype?.type ?? signatureInput(signature, n.name)?.dtype;
      if (dt && dt !== 'DT_FLOAT') problems.push(`input '${n.name}': dtype ${dt} (an image classifier takes float32)`);
      continue;
    }
    isKonst.set(n.name, n.op !== 'Shape' && dataIns.every((r) => isKonst.get(r.node)));
    if (CONTROL_FLOW.has(n.op)) {
      unsupported.set(`${n.op} (control flow)`, [...(unsupported.get(`${n.op} (control flow)`) ?? []), n.name]);
      continue;
    }
    const rule = RULES[n.op];
    if (!rule) {
      unsupported.set(n.op, [...(unsupported.get(n.op) ?? []), n.name]);
      continue;
    }
    const why = rule.check?.(n);
    if (why) problems.push(`node '${n.name}' (${n.op}): ${why}`);
    for (const k of rule.konst?.(n) ?? []) {
      const r = dataIns[k];
      if (r && !isKonst.get(r.node)) problems.push(`node '${n.name}' (${n.op}): input ${k} ('${r.node}') must be a constant`);
    }
  }
  for (const [op, names] of unsupported)
    problems.push(
      `op ${op} is not supported: ${names
        .slice(0, 5)
        .map((s) => `'${s}'`)
        .join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`,
    );
  if (problems.length)
    throw new UserError(`${where}: this TensorFlow.js graph model cannot be converted to ONNX:\n  - ${problems.join('\n  - ')}`, TF_TO_ONNX_HINT);

  // Convert.
  const e = new OnnxWriter();
  const values = new Map<string, Val>();
  for (const n of order) {
    if (n.op === 'Const') {
      const w = weights.get(n.name);
      const v = w
        ? e.konst(n.name, w.shape, w.data, w.dtype === 'float32' ? 'float32' : w.dtype === 'bool' ? 'bool' : 'int64')
        : (() => {
            const t = inlineTensor(n.attr.value!.tensor!, n.name)!;
            return e.konst(n.name, t.shape, t.data, t.dtype);
          })();
      values.set(`${n.name}:0`, v);
      continue;
    }
    if (n.op === 'Placeholder' || n.op === 'PlaceholderWithDefault') {
      const shape = dims(n.attr.shape?.shape) ?? dims(signatureInput(signature, n.name)?.tensorShape);
      if (!shape) throw new UserError(`${where}: input '${n.name}' has no shape.`, 'Convert the model with a fixed input shape (only the batch may be -1).');
      values.set(`${n.name}:0`, e.input(n.name, shape));
      continue;
    }
    const ins = n.input
      .filter((i) => !i.startsWith('^'))
      .map((i) => {
        const v = values.get(refKey(i));
        if (!v) throw new UserError(`${where}: node '${n.name}' reads '${i}', which no converted node writes.`, TF_TO_ONNX_HINT);
        return v;
      });
    const rule = RULES[n.op];
    const c: GCtx = { e, n, name: n.name, ins };
    const folded = ins.length > 0 && ins.every((v) => v.konst) && rule.fold ? rule.fold(c) : undefined;
    const out = folded ?? rule.convert(c);
    (Array.isArray(out) ? out : [out]).forEach((v, k) => values.set(`${n.name}:${k}`, v));
  }

  // Outputs: the input of a final softmax (through Identity nodes) where there is one.
  const passThrough = new Set(['Identity', 'Snapshot', 'StopGradient', 'PreventGradient']);
  const plans: OutputPlan[] = outputRefs.map((ref) => {
    let r = parseRef(ref)!;
    let n = byName.get(r.node)!;
    while (passThrough.has(n.op) || n.op === 'IdentityN') {
      const next = parseRef(n.input.filter((i) => !i.startsWith('^'))[n.op === 'IdentityN' ? r.index : 0])!;
      r = next;
      n = byName.get(r.node)!;
    }
    const val = values.get(`${r.node}:${r.index}`) ?? values.get(refKey(ref))!;
    if (n.op === 'Softmax') {
      return { val: values.get(refKey(n.input[0]))!, kind: 'logits', note: `logits (pre-softmax of node ${n.name})` };
    }
    if (isProbabilities(n, byName))
      return { val, kind: 'log', note: `log-probabilities: Log of node ${n.name} (made from softmax outputs; no single pre-softmax tensor exists)` };
    return { val, kind: 'as-is', note: `the model's own output (node ${n.name} is not a softmax)` };
  });
  const { model, note } = finishOutputs(e, plans, {
    producer: meta.producer,
    producerVersion: meta.producerVersion,
    docString: 'Converted by Robustness Lab from a TensorFlow.js graph model.',
    source: 'tfjs graph-model',
  });
  return { model, outputNote: note };
}

function signatureInput(sig: Signature | undefined, node: string) {
  return Object.values(sig?.inputs ?? {}).find((i) => i.name && parseRef(i.name)!.node === node);
}

/** Sums / scalings / averages of softmax outputs: probabilities without one pre-softmax tensor. */
function isProbabilities(n: TfNode, byName: Map<string, TfNode>, depth = 0): boolean {
  if (depth > 8) return false;
  const ins = n.input.filter((i) => !i.startsWith('^')).map((i) => byName.get(parseRef(i)!.node)!);
  const prob = (m: TfNode): boolean =>
    m.op === 'Softmax' || (['Identity', 'Snapshot'].includes(m.op) ? prob(byName.get(parseRef(m.input[0])!.node)!) : isProbabilities(m, byName, depth + 1));
  if (['Add', 'AddV2', 'AddN'].includes(n.op)) return ins.every(prob);
  if (['Mul', 'RealDiv'].includes(n.op)) return ins.some((m) => m.op === 'Const') && ins.filter((m) => m.op !== 'Const').every(prob);
  return false;
}
