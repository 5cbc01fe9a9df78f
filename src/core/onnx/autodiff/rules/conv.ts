/**
 * Conv and ConvTranspose are each other's adjoint with the same weight tensor: Conv's weight
 * [M, C/g, k…] read by ConvTranspose means C_in = M and C_out/g = C/g, so group, strides,
 * dilations and begin pads carry over unchanged; only the end pad / output_padding is recomputed
 * so the adjoint lands on exactly the input's size (odd sizes, ceil-free floor division). With
 * constant weights the input gradient is a forward Conv instead where that runs faster
 * (convInputGradient).
 * Weight gradients are convolutions too (convWeightGradient), bias gradients sums over batch and
 * space.
 */
import { attrInt, attrInts, attrString } from '../../attributes';
import type { NodeProto } from '../../proto';
import type { BackwardContext } from '../context';
import { adjointAttrs, windowOf, type Window } from '../geometry';
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

/**
 * The input gradient of y = conv(x, W) as a forward Conv when W is a constant, instead of
 * ConvTranspose: onnxruntime runs ConvTranspose as one GEMM per image with the image's spatial size
 * as the inner dimension plus a col2im, about 2x slower than its NCHWc Conv kernels on ResNet-18
 * (and up to 3x on 2×2 maps), and Conv lets it fuse the residual Sum that follows.
 *
 * Per axis, dx[i] = Σ_{o,k: o·s + k·d − p = i} W[k]·g[o]. With stride 1 that is a correlation of g
 * with the flipped kernel (dilation d, begin pad (K−1)·d − p). With stride s > 1 (dilation 1) the
 * output splits into s phases b (i = s·a + b): tap k feeds phase b = (k − p) mod s at offset
 * m = (k − b − p)/s, dx_b[a] = Σ W[k]·g[a − m], a stride-1 correlation with a sub-kernel. All s²
 * phases are one Conv with s² output channels per input channel (sub-kernels zero-padded to a
 * common size L), and DepthToSpace (CRD) interleaves them; the excess rows are cropped. The weights
 * are rearranged here, once, at build time (a second copy of the weights in the gradient model).
 *
 * Returns undefined, and the caller uses ConvTranspose, where this does not apply (weights not
 * constant, e.g. when their gradient is wanted; strided but not 2-D, unequal strides, dilated, or
 * before opset 11, which has no DepthToSpace CRD mode) or would be slower (below).
 */
export function convInputGradient(ctx: BackwardContext, g: string, w: string, win: Window, group: number): string | undefined {
  const W = ctx.constant(w);
  const n = win.kernel.length;
  if (!W || W.dims.length !== n + 2) return undefined;
  const strided = win.strides.some((s) => s !== 1);
  if (strided && (n !== 2 || win.strides[0] !== win.strides[1] || win.dilations.some((d) => d !== 1) || ctx.opset < 11)) return undefined;
  const s = strided ? win.strides[0] : 1;
  const [M, Cg] = W.dims;
  const K = W.dims.slice(2);
  const Mg = M / group;
  // Few output channels (an image's C = 1 or 3; the stem's 12 phase channels) leave the NCHWc
  // Conv mostly idle, while ConvTranspose's per-image GEMM is wide there (64×64 maps): 18 ms against
  // 7 on ResNet-18's stem (batch 50). A kernel smaller than the stride leaves phases without taps,
  // all zero weights (1×1 stride-2 downsamples: 4x the work): ConvTranspose there as well.
  if (Cg * group * s ** n < 16 || (strided && K.some((k) => k < s))) return undefined;
  // Per axis: the tap k's phase and position j in the new kernel, the kernel size L, and the pads.
  const phaseOf: number[][] = [],
    jOf: number[][] = [],
    L: number[] = [],
    begin: number[] = [],
    end: number[] = [],
    dil: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = win.padsBegin[i];
    if (!strided) {
      // Flipped kernel: j = K−1−k, begin pad (K−1)·d − p, end pad so that the Conv gives inSize rows.
      const d = win.dilations[i];
      const b = (K[i] - 1) * d - p;
      const e = win.inSize[i] - win.outSize[i] - b + (K[i] - 1) * d;
      if (b < 0 || e < 0) return undefined; // pads wider than the kernel: keep ConvTranspose
      phaseOf.push(new Array(K[i]).fill(0));
      jOf.push(Array.from({ length: K[i] }, (_, k) => K[i] - 1 - k));
      L.push(K[i]);
      begin.push(b);
      end.push(e);
      dil.push(d);
      continue;
    }
    const phase = Array.from({ length: K[i] }, (_, k) => (((k - p) % s) + s) % s);
    const m = Array.from({ length: K[i] }, (_, k) => (k - phase[k] - p) / s);
    const P = Math.max(0, ...m);
    const size = P - Math.min(...m) + 1;
    // The Conv gives outSize + P + E − (size − 1) rows per phase; E makes that at least ⌈inSize/s⌉.
    phaseOf.push(phase);
    jOf.push(m.map((v) => P - v));
    L.push(size);
    begin.push(P);
    end.push(Math.max(0, Math.ceil(win.inSize[i] / s) - win.outSize[i] - P + size - 1));
    dil.push(1);
  }
  // A full correlation (a forward conv without padding: the adjoint pads K−1 on each side) is
  // mostly border on small maps, where the NCHWc kernel is slow: the demo CNN's 5×5 valid conv on
  // 8×8 maps took 7.9 ms as a Conv, 3.6 ms as ConvTranspose (batch 100). Pads up to the forward's
  // (or 1) cost what the forward conv cost.
  for (let i = 0; i < n; i++) {
    const allowed = Math.max(1, win.padsBegin[i], win.padsEnd[i]);
    if (begin[i] > allowed || end[i] > allowed) return undefined;
  }
  const S = s ** n;
  const lSize = L.reduce((a, b) => a * b, 1);
  const kSize = K.reduce((a, b) => a * b, 1);
  const C = Cg * group;
  const v = new Float32Array(C * S * Mg * lSize);
  const kIdx = new Array<number>(n);
  for (let kf = 0; kf < kSize; kf++) {
    // Row-major spatial index → per-axis tap, phase and new position.
    let rest = kf,
      ph = 0,
      jf = 0;
    for (let i = n - 1; i >= 0; i--) {
      kIdx[i] = rest % K[i];
      rest = Math.floor(rest / K[i]);
    }
    for (let i = 0; i < n; i++) {
      ph = ph * s + phaseOf[i][kIdx[i]];
      jf = jf * L[i] + jOf[i][kIdx[i]];
    }
    for (let gi = 0; gi < group; gi++)
      for (let mm = 0; mm < Mg; mm++)
        for (let c = 0; c < Cg; c++) {
          const src = ((gi * Mg + mm) * Cg + c) * kSize + kf;
          const dst = (((gi * Cg + c) * S + ph) * Mg + mm) * lSize + jf;
          v[dst] = W.values[src];
        }
  }
  const e = ctx.e;
  const kernel = e.floats([C * S, Mg, ...L], v, 'wadj');
  const conv = e.op('Conv', [g, kernel], { kernel_shape: L, pads: [...begin, ...end], dilations: dil, group, strides: new Array(n).fill(1) });
  if (!strided) return conv;
  const out = e.op('DepthToSpace', [conv], { blocksize: s, mode: 'CRD' });
  // Rows past the input's size (the last phase block may overhang, or E was clamped at 0) are cropped.
  const rows = win.inSize.map((_, i) => s * (win.outSize[i] + begin[i] + end[i] - (L[i] - 1)));
  if (rows.every((r, i) => r === win.inSize[i])) return out;
  return e.slice(out, [0, 0], win.inSize, [2, 3]);
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
      const dx = ctx.needs(x)
        ? (convInputGradient(ctx, g!, w, win, group) ?? ctx.e.op('ConvTranspose', [g!, w], { ...adjointAttrs(win), group, kernel_shape: kernel }))
        : undefined;
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
