/**
 * Reductions and softmaxes.
 * ReduceSum/ReduceMean: g (re-expanded where keepdims=0) broadcast back over the reduced axes,
 * divided by the count for the mean. Axes are an attribute before opset 13 (ReduceSum) / 18
 * (ReduceMean) and an optional input after; no axes means all axes, unless noop_with_empty_axes.
 * Softmax: dx = y·(g − Σ g·y); LogSoftmax: dx = g − softmax·Σ g, with softmax = exp(y). The sums
 * run over the softmax axes: before opset 13 the input is coerced to 2-D at `axis` (default 1),
 * i.e. all axes from `axis` on; from 13 only `axis` (default -1).
 */
import { attrInt, attrInts } from '../../attributes';
import { DataType, type NodeProto } from '../../proto';
import type { BackwardContext } from '../context';
import { normAxis } from '../context';
import type { CheckInfo, GradRule } from '../types';

/** The reduced axes (normalised, sorted), or undefined for a no-op reduction. */
function reducedAxes(node: NodeProto, info: CheckInfo, rank: number): number[] | undefined {
  const axesAsInput = node.opType === 'ReduceSum' ? info.modelOpset >= 13 : info.modelOpset >= 18;
  let axes: number[] | undefined;
  if (axesAsInput) {
    const name = node.input?.[1];
    if (name) {
      const c = info.constant(name);
      if (!c) throw new Error('axes must be constant');
      axes = c.values;
    }
    if ((!axes || axes.length === 0) && attrInt(node, 'noop_with_empty_axes', 0) === 1) return undefined;
  } else axes = attrInts(node, 'axes');
  if (!axes || axes.length === 0) return Array.from({ length: rank }, (_, i) => i);
  return [...new Set(axes.map((a) => normAxis(a, rank)))].sort((a, b) => a - b);
}

function reduceBackward(node: NodeProto, g: string, ctx: BackwardContext, mean: boolean): string {
  const e = ctx.e;
  const x = node.input![0];
  const xd = ctx.dims(x);
  const axes = reducedAxes(node, ctx, xd.length);
  if (!axes) return g;
  let cur = attrInt(node, 'keepdims', 1) ? g : e.unsqueeze(g, axes);
  if (mean) {
    const sizes = axes.map((a) => xd[a]);
    cur = sizes.every((d): d is number => typeof d === 'number')
      ? e.mul(cur, e.scalar(1 / sizes.reduce((a, b) => a * b, 1)))
      : e.div(cur, e.div(e.cast(e.op('Size', [x]), DataType.FLOAT), e.cast(e.op('Size', [node.output![0]]), DataType.FLOAT)));
  }
  return e.expandLike(cur, xd.length, x, xd.length);
}

function softmaxAxes(node: NodeProto, info: CheckInfo, rank: number): number[] {
  if (info.modelOpset >= 13) return [normAxis(attrInt(node, 'axis', -1), rank)];
  const axis = normAxis(attrInt(node, 'axis', 1), rank);
  return Array.from({ length: rank - axis }, (_, i) => axis + i);
}

const checkAxes = (node: NodeProto, info: CheckInfo) => {
  const dims = info.shape(node.input![0]);
  if (dims) reducedAxes(node, info, dims.length);
  return undefined;
};

export const reduceRules: Record<string, GradRule> = {
  ReduceSum: { diff: [0], constant: [1], check: checkAxes, backward: (node, [g], ctx) => [reduceBackward(node, g!, ctx, false)] },
  ReduceMean: { diff: [0], constant: [1], check: checkAxes, backward: (node, [g], ctx) => [reduceBackward(node, g!, ctx, true)] },
  Softmax: {
    diff: [0],
    backward(node, [g], ctx) {
      const e = ctx.e;
      const y = node.output![0];
      const axes = softmaxAxes(node, ctx, ctx.dims(y).length);
      return [e.mul(y, e.sub(g!, e.reduce('ReduceSum', e.mul(g!, y), axes, true)))];
    },
  },
  LogSoftmax: {
    diff: [0],
    backward(node, [g], ctx) {
      const e = ctx.e;
      const y = node.output![0];
      const axes = softmaxAxes(node, ctx, ctx.dims(y).length);
      return [e.sub(g!, e.mul(e.op('Exp', [y]), e.reduce('ReduceSum', g!, axes, true)))];
    },
  },
};
