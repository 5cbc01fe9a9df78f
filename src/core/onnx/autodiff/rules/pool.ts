/**
 * Pools.
 *
 * MaxPool: the gradient goes to the one input position the forward picked. Two constructions:
 *  1. Scatter (fast): the forward MaxPool also returns its Indices (flat positions in N·C·H·W)
 *     and ScatterElements writes g there. When windows overlap, one position can be the max of
 *     several windows and those contributions must ADD: that needs ScatterElements'
 *     reduction='add' (opset 16). With disjoint windows plain ScatterElements (opset 11) is exact.
 *     Models at opset 13-15 with overlapping pools are raised to opset 16 (see opset.ts: no op's
 *     inference semantics changes between 13 and 16 except RoiAlign's default, which blocks the raise).
 *  2. Windows (any opset ≥ 7): a Conv with one-hot kernels lays every window out as K channels
 *     (input padded with -1e30, so padding never wins), ArgMax picks the first max of each window,
 *     and a ConvTranspose with the same one-hot kernels sums the masked g back onto the input:
 *     overlapping windows add up by construction. Used when the scatter is not available.
 * Ties go to the first maximum in window order, like onnxruntime's MaxPool.
 *
 * AveragePool: g divided by each window's element count (counted exactly like onnxruntime: the
 * positions inside the input, or inside the padded extent with count_include_pad) and spread
 * back with a ConvTranspose of a ones kernel.
 */
import { attrInt, attrInts } from '../../attributes';
import { DataType, type NodeProto } from '../../proto';
import type { BackwardContext } from '../context';
import { adjointAttrs, disjointWindows, oneHotKernels, windowOf, type Window } from '../geometry';
import type { CheckInfo, GradRule } from '../types';
import { spatialDims } from './conv';

function poolWindow(node: NodeProto, info: CheckInfo): Window {
  const kernel = attrInts(node, 'kernel_shape');
  if (!kernel) throw new Error('kernel_shape missing');
  return windowOf(node, kernel, spatialDims(info, node.input![0]), spatialDims(info, node.output![0]));
}

const checkPool = (node: NodeProto, info: CheckInfo) => {
  if (info.strict) poolWindow(node, info);
  return undefined;
};

/** [B, 1, ...spatial] view of an [N, C, ...spatial] tensor: every channel becomes its own image. */
function planes(ctx: BackwardContext, t: string, spatial: number[]): string {
  return ctx.e.reshape(t, ctx.e.ints([-1, 1, ...spatial]));
}

function maxPoolScatter(node: NodeProto, g: string, ctx: BackwardContext, add: boolean): string {
  const e = ctx.e;
  const x = node.input![0];
  let indices = node.output?.[1];
  if (!indices) {
    indices = ctx.forwardOutput(node, 1, 'maxpool_indices');
    // The indices must be row-major; the forward's Y does not depend on storage_order.
    node.attribute = (node.attribute ?? []).filter((a) => a.name !== 'storage_order');
  }
  const flat = e.ints([-1]);
  const zeros = e.op('ConstantOfShape', [e.reshape(e.op('Size', [x]), flat)]);
  const scattered = e.op('ScatterElements', [zeros, e.reshape(indices, flat), e.reshape(g, flat)], { axis: 0, ...(add ? { reduction: 'add' } : {}) });
  return ctx.reshapeLike(scattered, x);
}

function maxPoolWindows(node: NodeProto, g: string, ctx: BackwardContext, w: Window): string {
  const e = ctx.e;
  const x = node.input![0];
  const n = w.kernel.length;
  const k = w.kernel.reduce((a, b) => a * b, 1);
  const kernels = e.floats([k, 1, ...w.kernel], oneHotKernels(w.kernel), 'onehot');
  const adj = adjointAttrs(w);
  const endPads = adj.pads.slice(n);
  const padded = e.pad(planes(ctx, x, w.inSize), [0, 0, ...w.padsBegin, 0, 0, ...endPads], -1e30);
  const windows = e.op('Conv', [padded, kernels], { strides: w.strides, dilations: w.dilations, kernel_shape: w.kernel });
  const first = e.op('ArgMax', [windows], { axis: 1, keepdims: 1 });
  const mask = e.cast(
    e.op('Equal', [
      first,
      e.ints(
        Array.from({ length: k }, (_, i) => i),
        [1, k, ...new Array(n).fill(1)],
      ),
    ]),
    DataType.FLOAT,
  );
  const spread = e.mul(mask, planes(ctx, g, w.outSize));
  return ctx.reshapeLike(e.op('ConvTranspose', [spread, kernels], { ...adj, kernel_shape: w.kernel }), x);
}

/** Per-axis window element counts as onnxruntime divides by them. */
function windowCounts(w: Window, i: number, includePad: boolean): number[] {
  const lo = includePad ? -w.padsBegin[i] : 0;
  const hi = includePad ? w.inSize[i] + w.padsEnd[i] : w.inSize[i];
  return Array.from({ length: w.outSize[i] }, (_, o) => {
    let c = 0;
    for (let j = 0; j < w.kernel[i]; j++) {
      const p = o * w.strides[i] - w.padsBegin[i] + j * w.dilations[i];
      if (p >= lo && p < hi) c++;
    }
    return c;
  });
}

export const poolRules: Record<string, GradRule> = {
  MaxPool: {
    diff: [0],
    nondiffOutputs: [1],
    outputs: [0],
    check: checkPool,
    wantsOpset: (node, info) => (info.strict && !disjointWindows(poolWindow(node, info)) ? 16 : 11),
    backward(node, [g], ctx) {
      const w = poolWindow(node, ctx);
      const disjoint = disjointWindows(w);
      const rowMajor = !node.output?.[1] || attrInt(node, 'storage_order', 0) === 0;
      const scatter = ctx.opset >= 11 && rowMajor && (disjoint || ctx.opset >= 16);
      return [scatter ? maxPoolScatter(node, g!, ctx, !disjoint) : maxPoolWindows(node, g!, ctx, w)];
    },
  },
  AveragePool: {
    diff: [0],
    check: checkPool,
    backward(node, [g], ctx) {
      const e = ctx.e;
      const x = node.input![0];
      const w = poolWindow(node, ctx);
      const include = attrInt(node, 'count_include_pad', 0) === 1;
      const counts = w.kernel.map((_, i) => windowCounts(w, i, include));
      const size = w.outSize.reduce((a, b) => a * b, 1);
      const inv = new Float32Array(size);
      for (let flat = 0; flat < size; flat++) {
        let rest = flat,
          c = 1;
        for (let i = w.outSize.length - 1; i >= 0; i--) {
          c *= counts[i][rest % w.outSize[i]];
          rest = Math.floor(rest / w.outSize[i]);
        }
        inv[flat] = c > 0 ? 1 / c : 0;
      }
      const scaled = e.mul(planes(ctx, g!, w.outSize), e.floats(w.outSize, inv, 'inv_count'));
      const ones = e.floats([1, 1, ...w.kernel], new Float32Array(w.kernel.reduce((a, b) => a * b, 1)).fill(1), 'ones');
      return [ctx.reshapeLike(e.op('ConvTranspose', [scaled, ones], { ...adjointAttrs(w), kernel_shape: w.kernel }), x)];
    },
  },
  GlobalAveragePool: {
    diff: [0],
    backward(node, [g], ctx) {
      const x = node.input![0];
      const spatial = spatialDims(ctx, x);
      const rank = ctx.dims(x).length;
      const scaled = ctx.e.mul(g!, ctx.e.scalar(1 / spatial.reduce((a, b) => a * b, 1)));
      return [ctx.e.expandLike(scaled, rank, x, rank)];
    },
  },
  // The gradient goes to the first maximum of each channel (ArgMax over the flattened plane).
  GlobalMaxPool: {
    diff: [0],
    backward(node, [g], ctx) {
      const e = ctx.e;
      const x = node.input![0];
      const spatial = spatialDims(ctx, x);
      const hw = spatial.reduce((a, b) => a * b, 1);
      const first = e.op('ArgMax', [e.reshape(x, e.ints([0, 0, -1]))], { axis: 2, keepdims: 1 });
      const mask = e.cast(e.op('Equal', [first, e.ints(Array.from({ length: hw }, (_, i) => i))]), DataType.FLOAT);
      return [ctx.reshapeLike(e.mul(mask, e.reshape(g!, e.ints([0, 0, 1]))), x)];
    },
  },
};
