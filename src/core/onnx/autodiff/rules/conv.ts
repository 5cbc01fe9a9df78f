/**
 * Conv and ConvTranspose are each other's adjoint with the same weight tensor: Conv's weight
 * [M, C/g, k…] read by ConvTranspose means C_in = M and C_out/g = C/g, so group, strides,
 * dilations and begin pads carry over unchanged; only the end pad / output_padding is recomputed
 * so the adjoint lands on exactly the input's size (odd sizes, ceil-free floor division).
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

export const convRules: Record<string, GradRule> = {
  Conv: {
    diff: [0],
    check: checkStatic,
    backward(node, [g], ctx: BackwardContext) {
      const [x, w] = node.input!;
      const kernel = kernelOf(node, ctx);
      const win = windowOf(node, kernel, spatialDims(ctx, x), spatialDims(ctx, node.output![0]));
      return [ctx.e.op('ConvTranspose', [g!, w], { ...adjointAttrs(win), group: attrInt(node, 'group', 1), kernel_shape: kernel })];
    },
  },
  ConvTranspose: {
    diff: [0],
    check: checkStatic,
    backward(node, [g], ctx: BackwardContext) {
      const [x, w] = node.input!;
      const kernel = kernelOf(node, ctx);
      const inSize = spatialDims(ctx, x), outSize = spatialDims(ctx, node.output![0]);
      const n = kernel.length;
      const strides = attrInts(node, 'strides') ?? new Array(n).fill(1);
      const dilations = attrInts(node, 'dilations') ?? new Array(n).fill(1);
      const begin = convTransposePadsBegin(node, kernel, inSize, outSize);
      // The Conv reads g on a canvas of the un-cropped size s·(in-1)+ext: end pad = what the transpose cropped, output_padding rows ignored.
      const end = kernel.map((k, i) => Math.max(0, strides[i] * (inSize[i] - 1) + (k - 1) * dilations[i] + 1 - begin[i] - outSize[i]));
      return [ctx.e.op('Conv', [g!, w], { strides, dilations, pads: [...begin, ...end], group: attrInt(node, 'group', 1), kernel_shape: kernel })];
    },
  },
};
