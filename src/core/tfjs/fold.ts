/**
 * Build-time arithmetic on constant values (TF order, row-major), for the shape and constant
 * arithmetic graph models carry: broadcasting element-wise ops, StridedSlice, Pack, Concat,
 * reductions. float32 results are rounded to float32, as TensorFlow.js computes them.
 */
import { broadcastShapes, sizeOf } from './emit';

export function stridesOf(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  for (let i = shape.length - 1, acc = 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** out[i] = fn(a[i'], b[i'']) with numpy broadcasting. */
export function broadcastBinary(
  a: Float64Array,
  aShape: number[],
  b: Float64Array,
  bShape: number[],
  fn: (x: number, y: number) => number,
): { data: Float64Array; shape: number[] } {
  const shape = broadcastShapes(aShape, bShape);
  const rank = shape.length;
  const pad = (s: number[]) => [...new Array(rank - s.length).fill(1), ...s];
  const as = pad(aShape),
    bs = pad(bShape);
  const aStr = stridesOf(as).map((st, i) => (as[i] === 1 ? 0 : st));
  const bStr = stridesOf(bs).map((st, i) => (bs[i] === 1 ? 0 : st));
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < n; o++) {
    let ai = 0,
      bi = 0;
    for (let k = 0; k < rank; k++) {
      ai += idx[k] * aStr[k];
      bi += idx[k] * bStr[k];
    }
    out[o] = fn(a[ai], b[bi]);
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return { data: out, shape };
}

/** Gathers `data` of `shape` at per-axis index lists (an outer product of indices). */
export function gatherAxes(data: Float64Array, shape: number[], indices: number[][]): Float64Array {
  const outShape = indices.map((l) => l.length);
  const str = stridesOf(shape);
  const n = sizeOf(outShape);
  const out = new Float64Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    for (let k = 0; k < shape.length; k++) src += indices[k][idx[k]] * str[k];
    out[o] = data[src];
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k] < outShape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

export interface SliceSpec {
  /** Per input axis: the indices taken (static dims only). */
  begin: number[];
  end: number[];
  strides: number[];
  beginMask: number;
  endMask: number;
  ellipsisMask: number;
  newAxisMask: number;
  shrinkAxisMask: number;
}

export interface SlicePlan {
  /** Per input axis: start, end (exclusive), step as ONNX Slice takes them (may be unresolved for unknown dims). */
  axes: { axis: number; start: number; end: number; step: number; shrink: boolean }[];
  /** Output axes (after shrinking) where a new axis of size 1 is inserted. */
  newAxes: number[];
  /** Static output shape (-1 unknown). */
  shape: number[];
  /** Per input axis, the indices taken, when the dim is known. */
  indices?: number[][];
}

const INT_MAX = 2 ** 53 - 1;

/** TF StridedSlice semantics (tf.strided_slice) for an input of static shape `shape` (-1 unknown). */
export function planStridedSlice(shape: number[], s: SliceSpec): SlicePlan {
  const rank = shape.length;
  // Expand the spec: ellipsis covers the axes the other entries do not name.
  const dense: { begin: number; end: number; stride: number; bm: boolean; em: boolean; shrink: boolean; newAxis: boolean; full?: boolean }[] = [];
  const n = s.begin.length;
  const named = [...Array(n).keys()].filter((i) => !((s.newAxisMask >> i) & 1) && !((s.ellipsisMask >> i) & 1)).length;
  for (let i = 0; i < n; i++) {
    if ((s.ellipsisMask >> i) & 1) {
      for (let k = 0; k < rank - named; k++) dense.push({ begin: 0, end: 0, stride: 1, bm: true, em: true, shrink: false, newAxis: false, full: true });
      continue;
    }
    dense.push({
      begin: s.begin[i],
      end: s.end[i],
      stride: s.strides[i] ?? 1,
      bm: !!((s.beginMask >> i) & 1),
      em: !!((s.endMask >> i) & 1),
      shrink: !!((s.shrinkAxisMask >> i) & 1),
      newAxis: !!((s.newAxisMask >> i) & 1),
    });
  }
  const axes: SlicePlan['axes'] = [];
  const newAxes: number[] = [];
  const outShape: number[] = [];
  const indices: number[][] = [];
  let axis = 0;
  let known = true;
  for (const d of dense) {
    if (d.newAxis) {
      newAxes.push(outShape.length);
      outShape.push(1);
      continue;
    }
    const dim = axis < rank ? shape[axis] : 1;
    if (d.full) {
      axes.push({ axis, start: 0, end: INT_MAX, step: 1, shrink: false });
      outShape.push(dim);
      if (dim >= 0) indices.push([...Array(dim).keys()]);
      else known = false;
      axis++;
      continue;
    }
    if (d.shrink) {
      const b = d.begin;
      axes.push({ axis, start: b, end: b === -1 ? INT_MAX : b + 1, step: 1, shrink: true });
      if (dim >= 0) indices.push([b < 0 ? b + dim : b]);
      else known = false;
      axis++;
      continue;
    }
    const st = d.stride;
    let start = d.bm ? (st > 0 ? 0 : INT_MAX) : d.begin;
    let end = d.em ? (st > 0 ? INT_MAX : -INT_MAX) : d.end;
    if (dim >= 0) {
      // Resolve to concrete indices as TF does (negative wrap, clamp).
      const norm = (v: number) => {
        if (v === INT_MAX) return st > 0 ? dim : dim - 1;
        if (v === -INT_MAX) return -1;
        const x = v < 0 ? v + dim : v;
        return st > 0 ? Math.min(Math.max(x, 0), dim) : Math.min(Math.max(x, -1), dim - 1);
      };
      const b = norm(start),
        e = norm(end);
      const list: number[] = [];
      for (let i = b; st > 0 ? i < e : i > e; i += st) list.push(i);
      indices.push(list);
      outShape.push(list.length);
      start = b;
      end = st > 0 ? e : e < 0 ? -INT_MAX : e;
    } else {
      outShape.push(-1);
      known = false;
    }
    axes.push({ axis, start, end, step: st, shrink: false });
    axis++;
  }
  for (; axis < rank; axis++) {
    axes.push({ axis, start: 0, end: INT_MAX, step: 1, shrink: false });
    outShape.push(shape[axis]);
    if (shape[axis] >= 0) indices.push([...Array(shape[axis]).keys()]);
    else known = false;
  }
  return { axes, newAxes, shape: outShape, indices: known ? indices : undefined };
}

export const fround = (x: number) => Math.fround(x);
