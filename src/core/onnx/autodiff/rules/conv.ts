/**
 * Conv and ConvTranspose are each other's adjoint with the same weight tensor: Conv's weight
 * [M, C/g, k…] read by ConvTranspose means C_in = M and C_out/g = C/g, so group, strides,
 * dilations and begin pads carry over unchanged; only the end pad / output_padding is recomputed
 * so the adjoint lands on exactly the input's size (odd sizes, ceil-free floor division).
 * Weight gradients are convolutions too (convWeightGradient), bias gradients sums over batch and
 * space.
 */
import { attrInt, attrInts, attrString } from '../../attributes';
import type { NodeProto } from '../../proto';
import type { BackwardContext } from '../context';
import { adjointAttrs, windowOf } from '../geometry';
import type { CheckInfo, GradRule } from '../types';

/** Spatial dims (after N, C) of a tensor; they must be static. */
export function spatialDims(info: CheckInfo, name: string): number[] {
  const d = info.shape(name);
  if (!d) throw new Error(`shape of '${name}' unknown`);
  const s = d.slice(2);
  if (!s.every((x): x is number => typeof x === 'number')) throw new Error(`spatial dims of '${name}' are not static: [${d}]`);
  return s;
}

export function kernelOf(node: NodeProto, info: CheckInfo): number[] {
  const k = attrInts(node, 'kernel_shape') ?? info.shape(node.input![1])?.slice(2);
  if (!k || !k.every((x): x is number => typeof x === 'number')) throw new Error('kernel shape unknown');
  return k;
}

/** Shapes must be known before emitting (checked in strict mode only). */
function checkStatic(node: NodeProto, info: CheckInfo): string | undefined {
  if (!info.strict) return undefined;
  spatialDims(info, node.input![0]);
  spatialDims(info, node.output![0]);
  kernelOf(node, info);
  return undefined;
}

/** Begin pads of a ConvTranspose. With output_shape or SAME_*, the total padding is split as the ONNX spec (and onnxruntime 1.30) do: SAME_UPPER puts the odd pixel at the end, SAME_LOWER and NOTSET at the start. */
function convTransposePadsBegin(node: NodeProto, kernel: number[], inSize: number[], outSize: number[]): number[] {
  const n = kernel.length;
  const s = attrInts(node, 'strides') ?? new Array(n).fill(1);
  const d = attrInts(node, 'dilations') ?? new Array(n).fill(1);
  const op = attrInts(node, 'output_padding') ?? new Array(n).fill(0);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const pads = attrInts(node, 'pads') ?? new Array(2 * n).fill(0);
  const derived = attrInts(node, 'output_shape') !== undefined || autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER';
  return kernel.map((k, i) => {
    if (!derived) return autoPad === 'VALID' ? 0 : pads[i];
    const total = Math.max(0, (inSize[i] - 1) * s[i] + op[i] + (k - 1) * d[i] + 1 - outSize[i]);
    return autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : total - Math.floor(total / 2);
  });
}

/** Geometry of a convolution whose weight gradient is wanted: read along the conv's own input. */
interface ConvGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
  group: number;
  /** Spatial sizes of the conv's input and output. */
  inSize: number[];
  outSize: number[];
}

/**
 * The weight gradient of y = conv(x, W) (W [M, C/G, k…]) for the output gradient g:
 *   dW[m, c, k] = Σₙ Σₒ g[n, m, o] · x[n, gᵢ·C/G + c, o·s + k·d − p]
 * which is itself a convolution over o: the batch axis becomes the channel axis (x read as
 * [C/G, G·N, …], g as a kernel [M, N, …out]), strides and dilations trade places, the pads stay,
 * and the groups stay groups. The result [C/G, M, k'…] is transposed to W's layout and cropped to
 * k (the canvas may hold extra rows past the last window when the forward floor-divided).
 */
export function convWeightGradient(ctx: BackwardContext, x: string, g: string, geo: ConvGeometry, wDims: number[]): string {
  const e = ctx.e;
  const n = geo.kernel.length;
  const [, cg] = wDims;
  const G = geo.group;
  const spatialPerm = Array.from({ length: n }, (_, i) => i + 2);
  let input: string;
  if (G === 1)
    input = e.op('Transpose', [x], { perm: [1, 0, ...spatialPerm] }); // [C, N, …]
  else {
    const split = e.reshape(x, e.ints([-1, G, cg, ...geo.inSize])); // [N, G, C/G, …]
    const moved = e.op('Transpose', [split], { perm: [2, 1, 0, ...spatialPerm.map((a) => a + 1)] }); // [C/G, G, N, …]
    input = e.reshape(moved, e.ints([cg, -1, ...geo.inSize])); // [C/G, G·N, …]
  }
  const kernel = e.op('Transpose', [g], { perm: [1, 0, ...spatialPerm] }); // [M, N, …out]
  const conv = e.op('Conv', [input, kernel], {
    strides: geo.dilations,
    dilations: geo.strides,
    pads: [...geo.padsBegin, ...geo.padsEnd],
    group: G,
    kernel_shape: geo.outSize,
  }); // [C/G, M, k'…]
  const canvas = geo.kernel.map(
    (_, i) => Math.floor((geo.inSize[i] + geo.padsBegin[i] + geo.padsEnd[i] - geo.strides[i] * (geo.outSize[i] - 1) - 1) / geo.dilations[i]) + 1,
  );
  const dw = e.op('Transpose', [conv], { perm: [1, 0, ...spatialPerm] }); // [M, C/G, k'…]
  if (canvas.every((c, i) => c === geo.kernel[i])) return dw;
  return e.slice(dw, new Array(n).fill(0), geo.kernel, spatialPerm);
}

/** Σ of g over every axis but the channels: the gradient of a per-channel bias. */
function channelBiasGradient(ctx: BackwardContext, g: string, rank: number): string {
  return ctx.e.reduce('ReduceSum', g, [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)], false);
}

export const convRules: Record<string, GradRule> = {
  Conv: {
    diff: [0, 1, 2],
    check: checkStatic,
    backward(node, [g], ctx: BackwardContext) {
      const [x, w, b] = node.input!;
      const kernel = kernelOf(node, ctx);
      const win = windowOf(node, kernel, spatialDims(ctx, x), spatialDims(ctx, node.output![0]));
      const group = attrInt(node, 'group', 1);
      const dx = ctx.needs(x) ? ctx.e.op('ConvTranspose', [g!, w], { ...adjointAttrs(win), group, kernel_shape: kernel }) : undefined;
      const dw = ctx.needs(w) ? convWeightGradient(ctx, x, g!, { ...win, group }, ctx.staticDims(w, 'the weight shape')) : undefined;
      const db = ctx.needs(b) ? channelBiasGradient(ctx, g!, ctx.dims(x).length) : undefined;
      return [dx, dw, db];
    },
  },
  ConvTranspose: {
    diff: [0, 1, 2],
    check: checkStatic,
    backward(node, [g], ctx: BackwardContext) {
      const [x, w, b] = node.input!;
      const kernel = kernelOf(node, ctx);
      const inSize = spatialDims(ctx, x),
        outSize = spatialDims(ctx, node.output![0]);
      const n = kernel.length;
      const strides = attrInts(node, 'strides') ?? new Array(n).fill(1);
      const dilations = attrInts(node, 'dilations') ?? new Array(n).fill(1);
      const group = attrInt(node, 'group', 1);
      const begin = convTransposePadsBegin(node, kernel, inSize, outSize);
      // The Conv reads g on a canvas of the un-cropped size s·(in-1)+ext: end pad = what the transpose cropped, output_padding rows ignored.
      const end = kernel.map((k, i) => Math.max(0, strides[i] * (inSize[i] - 1) + (k - 1) * dilations[i] + 1 - begin[i] - outSize[i]));
      const dx = ctx.needs(x) ? ctx.e.op('Conv', [g!, w], { strides, dilations, pads: [...begin, ...end], group, kernel_shape: kernel }) : undefined;
      // ConvTranspose(x, W) is the adjoint of Conv(·, W) from y-space to x-space: its weight
      // gradient is that Conv's, with g as the conv's input and x as its output gradient.
      const dw = ctx.needs(w)
        ? convWeightGradient(
            ctx,
            g!,
            x,
            { kernel, strides, dilations, padsBegin: begin, padsEnd: end, group, inSize: outSize, outSize: inSize },
            ctx.staticDims(w, 'the weight shape'),
          )
        : undefined;
      const db = ctx.needs(b) ? channelBiasGradient(ctx, g!, ctx.dims(x).length) : undefined;
      return [dx, dw, db];
    },
  },
};
