/**
 * Ops that move elements around. Reshape-like ops (Flatten, Reshape, Squeeze, Unsqueeze) keep
 * element order, so their gradient is g reshaped back to the input's shape whatever the opset's
 * axes form. Slice, Pad and Gather are linear selections: unit-step slices and constant pads
 * are undone with Pad (negative pads crop); strided slices, reflect/edge pads and gathers apply
 * the transposed selection matrix along the axis (one MatMul), which also sums repeated picks.
 */
import { attrInt, attrInts, attrString } from '../../attributes';
import type { NodeProto } from '../../proto';
import { normAxis } from '../context';
import type { CheckInfo, GradRule } from '../types';

const out = (node: NodeProto) => node.output![0];
const reshapeBack: GradRule = { diff: [0], backward: (node, [g], ctx) => [ctx.reshapeLike(g!, node.input![0])] };

function constInts(info: CheckInfo, name: string | undefined, what: string): number[] | undefined {
  if (!name) return undefined;
  const c = info.constant(name);
  if (!c) throw new Error(`${what} must be a constant`);
  return c.values;
}

interface AxisSlice {
  axis: number;
  start: number;
  step: number;
  count: number;
  length: number | string;
}

/** Slice's starts/ends/axes/steps (attributes before opset 10, constant inputs from 10), normalised per axis. */
function sliceAxes(node: NodeProto, info: CheckInfo, dims: (number | string)[]): AxisSlice[] {
  let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
  if (info.modelOpset < 10) {
    starts = attrInts(node, 'starts') ?? [];
    ends = attrInts(node, 'ends') ?? [];
    axes = attrInts(node, 'axes');
  } else {
    const [, s, e, a, st] = node.input!;
    starts = constInts(info, s, 'Slice starts')!;
    ends = constInts(info, e, 'Slice ends')!;
    axes = constInts(info, a, 'Slice axes');
    steps = constInts(info, st, 'Slice steps');
  }
  const rank = dims.length;
  return starts.map((s0, i) => {
    const axis = normAxis(axes?.[i] ?? i, rank);
    const step = steps?.[i] ?? 1;
    const length = dims[axis];
    if (typeof length !== 'number') {
      if (s0 === 0 && step === 1 && ends[i] >= 2 ** 31 - 1) return { axis, start: 0, step: 1, count: -1, length };
      throw new Error(`slicing the symbolic axis ${axis}`);
    }
    const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
    const norm = (v: number) => (v < 0 ? v + length : v);
    if (step > 0) {
      const start = clamp(norm(s0), 0, length),
        end = clamp(norm(ends[i]), 0, length);
      return { axis, start, step, count: Math.max(0, Math.ceil((end - start) / step)), length };
    }
    const start = clamp(norm(s0), 0, length - 1),
      end = clamp(norm(ends[i]), -1, length - 1);
    return { axis, start, step, count: Math.max(0, Math.ceil((start - end) / -step)), length };
  });
}

/** Pad's pads for every axis (attribute before opset 11, constant input from 11, optional axes from 18). */
function padAmounts(node: NodeProto, info: CheckInfo, rank: number): number[] {
  if (info.modelOpset < 11) return attrInts(node, 'pads') ?? attrInts(node, 'paddings') ?? new Array(2 * rank).fill(0);
  const raw = constInts(info, node.input![1], 'Pad pads')!;
  const axes = constInts(info, node.input?.[3], 'Pad axes');
  if (!axes) return raw;
  const full = new Array(2 * rank).fill(0);
  axes.forEach((a, i) => {
    full[normAxis(a, rank)] = raw[i];
    full[rank + normAxis(a, rank)] = raw[axes.length + i];
  });
  return full;
}

/** Source position of output position o for reflect/edge/wrap padding of a length-L axis padded by pb in front. */
function padSource(mode: string, o: number, pb: number, L: number): number {
  let s = o - pb;
  if (mode === 'edge' || L === 1) return Math.min(L - 1, Math.max(0, s));
  if (mode === 'wrap') return ((s % L) + L) % L;
  while (s < 0 || s >= L) s = s < 0 ? -s : 2 * (L - 1) - s; // reflect (mirror without repeating the edge)
  return s;
}

function checkWith(f: (node: NodeProto, info: CheckInfo, dims: (number | string)[]) => unknown) {
  return (node: NodeProto, info: CheckInfo): string | undefined => {
    const dims = info.shape(node.input![0]);
    if (!dims) {
      if (info.strict) return 'input shape unknown';
      return undefined;
    }
    try {
      f(node, info, dims);
    } catch (e) {
      if (info.strict || /constant/.test((e as Error).message)) return (e as Error).message;
    }
    return undefined;
  };
}

export const shapeRules: Record<string, GradRule> = {
  Flatten: reshapeBack,
  Reshape: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: {
    diff: [0],
    backward(node, [g], ctx) {
      const rank = ctx.dims(node.input![0]).length;
      const perm = attrInts(node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
      const inverse = new Array<number>(rank);
      perm.forEach((p, i) => (inverse[p] = i));
      return [ctx.e.op('Transpose', [g!], { perm: inverse })];
    },
  },
  Concat: {
    diff: 'all',
    check: checkWith((node, info) => {
      const rank = info.shape(node.input![0])!.length;
      const axis = normAxis(attrInt(node, 'axis', 0), rank);
      for (const i of node.input!) if (typeof info.shape(i)?.[axis] !== 'number') throw new Error(`Concat along the symbolic axis ${axis}`);
    }),
    backward(node, [g], ctx) {
      const rank = ctx.dims(node.input![0]).length;
      const axis = normAxis(attrInt(node, 'axis', 0), rank);
      let offset = 0;
      return node.input!.map((i) => {
        const len = ctx.dims(i)[axis] as number;
        const start = offset;
        offset += len;
        return ctx.needs(i) ? ctx.e.slice(g!, [start], [start + len], [axis]) : undefined;
      });
    },
  },
  // Outputs that got no gradient contribute zeros to the concatenation.
  Split: {
    diff: [0],
    backward(node, gy, ctx) {
      const rank = ctx.dims(node.input![0]).length;
      const axis = normAxis(attrInt(node, 'axis', 0), rank);
      const parts = node.output!.map((o, k) => gy[k] ?? ctx.e.zerosLike(o, ctx.dims(o)));
      return [parts.length === 1 ? parts[0] : ctx.e.op('Concat', parts, { axis })];
    },
  },
  Slice: {
    diff: [0],
    constant: [1, 2, 3, 4],
    check: checkWith(sliceAxes),
    backward(node, [g], ctx) {
      const x = node.input![0];
      const dims = ctx.dims(x);
      const rank = dims.length;
      const pads = new Array<number>(2 * rank).fill(0);
      const strided: AxisSlice[] = [];
      for (const s of sliceAxes(node, ctx, dims)) {
        if (s.count < 0) continue; // the whole symbolic axis
        if (s.step === 1) {
          pads[s.axis] = s.start;
          pads[rank + s.axis] = (s.length as number) - s.start - s.count;
        } else strided.push(s);
      }
      let cur = pads.some((p) => p !== 0) ? ctx.e.pad(g!, pads) : g!;
      for (const s of strided) {
        const L = s.length as number;
        const m = new Float32Array(s.count * L);
        for (let o = 0; o < s.count; o++) m[o * L + s.start + o * s.step] = 1;
        cur = ctx.axisAdjoint(cur, rank, s.axis, m, s.count, L);
      }
      return [cur];
    },
  },
  Pad: {
    diff: [0],
    constant: [1, 3],
    check: checkWith((node, info, dims) => {
      const pads = padAmounts(node, info, dims.length);
      const mode = attrString(node, 'mode', 'constant');
      if (!['constant', 'reflect', 'edge', 'wrap'].includes(mode)) throw new Error(`Pad mode '${mode}'`);
      if (mode !== 'constant')
        dims.forEach((d, i) => {
          if ((pads[i] !== 0 || pads[dims.length + i] !== 0) && typeof d !== 'number') throw new Error(`${mode} padding of the symbolic axis ${i}`);
        });
    }),
    backward(node, [g], ctx) {
      const x = node.input![0];
      const dims = ctx.dims(x);
      const rank = dims.length;
      const pads = padAmounts(node, ctx, rank);
      const mode = attrString(node, 'mode', 'constant');
      if (mode === 'constant')
        return [
          ctx.e.pad(
            g!,
            pads.map((p) => -p),
          ),
        ];
      let cur = g!;
      for (let i = 0; i < rank; i++) {
        const pb = pads[i],
          pe = pads[rank + i];
        if (pb === 0 && pe === 0) continue;
        const L = dims[i] as number,
          outLen = L + pb + pe;
        const m = new Float32Array(outLen * L);
        for (let o = 0; o < outLen; o++) m[o * L + padSource(mode, o, pb, L)] += 1;
        cur = ctx.axisAdjoint(cur, rank, i, m, outLen, L);
      }
      return [cur];
    },
  },
  // Gather with constant indices: the transposed one-hot selection along the axis (repeats add up).
  Gather: {
    diff: [0],
    constant: [1],
    check: checkWith((node, info, dims) => {
      if (!info.constant(node.input![1])) throw new Error('indices must be constant');
      if (typeof dims[normAxis(attrInt(node, 'axis', 0), dims.length)] !== 'number') throw new Error('gathering along the symbolic axis');
    }),
    backward(node, [g], ctx) {
      const [x, idx] = node.input!;
      const dims = ctx.dims(x);
      const rank = dims.length;
      const axis = normAxis(attrInt(node, 'axis', 0), rank);
      const indices = ctx.constant(idx)!;
      const L = dims[axis] as number,
        k = indices.values.length;
      const m = new Float32Array(k * L);
      indices.values.forEach((v, r) => (m[r * L + (v < 0 ? v + L : v)] += 1));
      const flatDims = [...dims.slice(0, axis), k, ...dims.slice(axis + 1)];
      const gDims = ctx.dims(out(node));
      const shaped =
        gDims.length === flatDims.length
          ? g!
          : ctx.e.reshape(g!, ctx.shapeConst(flatDims) ?? ctx.e.ints(flatDims.map((d, i) => (typeof d === 'number' ? d : i < axis ? 0 : -1))));
      return [ctx.axisAdjoint(shaped, rank, axis, m, k, L)];
    },
  },
  // TopK: the values are picks of the input along the axis, so their gradient scatters back to the
  // picked positions; the picks are distinct, so nothing collides. The indices carry no gradient
  // (kNN defenses use only them, and their true gradient through the argmin is zero).
  TopK: {
    diff: [0],
    constant: [1],
    nondiffOutputs: [1],
    outputs: [0],
    check: (_node, info) => (info.modelOpset < 11 ? 'TopK gradients need ScatterElements (opset 11 or newer)' : undefined),
    backward(node, [g], ctx) {
      const x = node.input![0];
      const dims = ctx.dims(x);
      const axis = normAxis(attrInt(node, 'axis', -1), dims.length);
      const indices = ctx.forwardOutput(node, 1, 'topk_indices');
      return [ctx.e.op('ScatterElements', [ctx.e.zerosLike(x, dims), indices, g!], { axis })];
    },
  },
};
