/**
 * Sliding-window geometry shared by Conv, ConvTranspose and the pools: kernel, strides,
 * dilations and the begin/end pads each node really uses (auto_pad resolved against the static
 * spatial sizes), and the ConvTranspose attributes that give a window op's exact adjoint.
 */
import { attrInts, attrString } from '../attributes';
import type { NodeProto } from '../proto';

export interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
  /** Spatial sizes of the window op's input and output. */
  inSize: number[];
  outSize: number[];
}

export const extent = (w: Window, i: number) => (w.kernel[i] - 1) * w.dilations[i] + 1;

/** The window of a Conv or pool node over input spatial sizes `inSize` producing `outSize`. */
export function windowOf(node: NodeProto, kernel: number[], inSize: number[], outSize: number[]): Window {
  const n = kernel.length;
  const strides = attrInts(node, 'strides') ?? new Array(n).fill(1);
  const dilations = attrInts(node, 'dilations') ?? new Array(n).fill(1);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const pads = attrInts(node, 'pads') ?? new Array(2 * n).fill(0);
  const padsBegin: number[] = [];
  const padsEnd: number[] = [];
  for (let i = 0; i < n; i++) {
    const ext = (kernel[i] - 1) * dilations[i] + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      // onnxruntime: total = max(0, (out-1)·s + ext - in); SAME_UPPER puts the odd pixel at the end.
      const total = Math.max(0, (outSize[i] - 1) * strides[i] + ext - inSize[i]);
      const small = Math.floor(total / 2);
      padsBegin.push(autoPad === 'SAME_UPPER' ? small : total - small);
      padsEnd.push(autoPad === 'SAME_UPPER' ? total - small : small);
    } else if (autoPad === 'VALID') {
      padsBegin.push(0);
      padsEnd.push(0);
    } else {
      padsBegin.push(pads[i] ?? 0);
      padsEnd.push(pads[n + i] ?? 0);
    }
  }
  return { kernel, strides, dilations, padsBegin, padsEnd, inSize, outSize };
}

/**
 * Attributes for the ConvTranspose that scatters window-shaped values back onto the input
 * positions: the same kernel geometry with begin pads unchanged and the end pad chosen so the
 * result has exactly the input's size. Rows no window reaches (floor mode) become output_padding
 * (always < stride); rows windows reach past the input (ceil mode, end padding) are cropped.
 */
export function adjointAttrs(w: Window): { strides: number[]; dilations: number[]; pads: number[]; output_padding: number[] } {
  const n = w.kernel.length;
  const end: number[] = [];
  const outputPadding: number[] = [];
  for (let i = 0; i < n; i++) {
    const pe = w.strides[i] * (w.outSize[i] - 1) + extent(w, i) - w.padsBegin[i] - w.inSize[i];
    end.push(Math.max(0, pe));
    outputPadding.push(Math.max(0, -pe));
  }
  return { strides: w.strides, dilations: w.dilations, pads: [...w.padsBegin, ...end], output_padding: outputPadding };
}

/** True when windows never share an input position (stride ≥ window extent on every axis). */
export function disjointWindows(w: Window): boolean {
  return w.kernel.every((_, i) => w.strides[i] >= extent(w, i));
}

/** One-hot kernels [K, 1, ...kernel]: channel k has a single 1 at the k-th kernel position (row-major). */
export function oneHotKernels(kernel: number[]): Float32Array {
  const k = kernel.reduce((a, b) => a * b, 1);
  const out = new Float32Array(k * k);
  for (let i = 0; i < k; i++) out[i * k + i] = 1;
  return out;
}
