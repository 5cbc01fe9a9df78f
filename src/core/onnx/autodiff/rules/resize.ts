/**
 * Resize (opset 10+) and Upsample (7-9), modes nearest and linear. Both are linear in x and
 * separable per axis: y = A_H · x · A_Wᵀ per image. The rule rebuilds each axis's interpolation
 * matrix A [out, in] in JS exactly as onnxruntime computes it (float32 coordinate transforms,
 * nearest rounding, linear clamping at the borders) and applies Aᵀ along the axis with one MatMul.
 * Nearest upsampling by an integer factor with floor-like indices is a block sum: Reshape +
 * ReduceSum instead of a MatMul.
 *
 * Before opset 11 (Upsample, Resize-10) onnxruntime uses 'asymmetric' coordinates and, for
 * nearest, truncation when upsampling (ceil when downsampling).
 * Not supported: cubic, tf_crop_and_resize, antialias, keep_aspect_ratio_policy other than
 * stretch, and resizing any axis but the last two.
 */
import { attrFloats, attrInt, attrInts, attrString } from '../../attributes';
import type { NodeProto } from '../../proto';
import type { BackwardContext } from '../context';
import { normAxis } from '../context';
import type { CheckInfo, GradRule } from '../types';

const f32 = Math.fround;

interface AxisMap {
  axis: number;
  inLen: number;
  outLen: number;
  matrix: Float32Array;
  block?: number;
}

function resizeSettings(node: NodeProto, info: CheckInfo) {
  const opset = info.modelOpset;
  const mode = attrString(node, 'mode', 'nearest');
  if (node.opType === 'Upsample' || opset < 11) {
    const scales = node.opType === 'Upsample' && opset < 9 ? attrFloats(node, 'scales') : info.constant(node.input![1])?.values;
    if (!scales) throw new Error('scales must be constant');
    return { mode, coord: 'asymmetric', nearest: 'simple', scales, axes: undefined as number[] | undefined };
  }
  // Scales must be known values (they enter the coordinate transform); with sizes the scales are
  // out/in of the static shapes, so sizes may be computed at runtime (torch: Concat(Shape(x)[:2], [H, W])).
  const scalesName = node.input?.[2];
  const scalesConst = scalesName ? info.constant(scalesName) : undefined;
  if (scalesName && !scalesConst && !node.input?.[3]) throw new Error('scales must be constant');
  const scales = scalesConst?.values;
  if (attrInt(node, 'antialias', 0) !== 0) throw new Error('antialias');
  if (attrString(node, 'keep_aspect_ratio_policy', 'stretch') !== 'stretch') throw new Error('keep_aspect_ratio_policy other than stretch');
  return {
    mode,
    coord: attrString(node, 'coordinate_transformation_mode', 'half_pixel'),
    nearest: attrString(node, 'nearest_mode', 'round_prefer_floor'),
    scales: scales && scales.length > 0 ? scales : undefined,
    axes: attrInts(node, 'axes'),
  };
}

/** The original coordinate of output position x (onnxruntime's float32 arithmetic). */
function originalCoordinate(coord: string, x: number, scale: number, outLen: number, inLen: number): number {
  switch (coord) {
    case 'half_pixel':
      return f32(f32(f32(x + 0.5) / scale) - 0.5);
    case 'pytorch_half_pixel':
      return outLen > 1 ? f32(f32(f32(x + 0.5) / scale) - 0.5) : 0;
    case 'align_corners':
      return outLen === 1 ? 0 : f32(f32(x * (inLen - 1)) / (outLen - 1));
    case 'asymmetric':
      return f32(x / scale);
    case 'tf_half_pixel_for_nn':
      return f32(f32(x + 0.5) / scale);
    case 'half_pixel_symmetric': {
      const adjustment = f32(outLen / f32(scale * inLen));
      const center = f32(inLen / 2);
      const offset = f32(center * f32(1 - adjustment));
      return f32(offset + f32(f32(f32(x + 0.5) / scale) - 0.5));
    }
    default:
      throw new Error(`coordinate_transformation_mode '${coord}'`);
  }
}

/** std::round: halves away from zero. */
const roundAway = (v: number) => Math.sign(v) * Math.round(Math.abs(v));

function nearestIndex(mode: string, v: number, downsampling: boolean): number {
  switch (mode) {
    case 'round_prefer_floor':
      return v === Math.trunc(v) + 0.5 ? Math.floor(v) : roundAway(v);
    case 'round_prefer_ceil':
      return roundAway(v);
    case 'floor':
      return Math.floor(v);
    case 'ceil':
      return Math.ceil(v);
    case 'simple':
      return downsampling ? Math.ceil(v) : Math.trunc(v);
    default:
      throw new Error(`nearest_mode '${mode}'`);
  }
}

function axisMaps(node: NodeProto, info: CheckInfo): AxisMap[] {
  const xd = info.shape(node.input![0]),
    yd = info.shape(node.output![0]);
  if (!xd || !yd) throw new Error('shapes unknown');
  const s = resizeSettings(node, info);
  if (s.mode !== 'nearest' && s.mode !== 'linear') throw new Error(`mode '${s.mode}'`);
  if (s.coord === 'tf_crop_and_resize') throw new Error('tf_crop_and_resize');
  const rank = xd.length;
  const axes = (s.axes ?? Array.from({ length: rank }, (_, i) => i)).map((a) => normAxis(a, rank));
  const maps: AxisMap[] = [];
  for (let i = 0; i < rank; i++) {
    const k = axes.indexOf(i);
    const inLen = xd[i],
      outLen = yd[i];
    // onnxruntime derives scales from sizes as float32(out) / float32(in).
    const scale = k < 0 ? 1 : s.scales ? f32(s.scales[k]) : typeof inLen === 'number' && typeof outLen === 'number' ? f32(outLen / inLen) : 1;
    if (scale === 1 && inLen === outLen) continue; // onnxruntime copies such axes unchanged
    if (typeof inLen !== 'number' || typeof outLen !== 'number') throw new Error(`resizing the symbolic axis ${i}`);
    if (i < rank - 2) throw new Error(`resizing axis ${i} (only the last two axes)`);
    const m = new Float32Array(outLen * inLen);
    let block = s.mode === 'nearest' && outLen % inLen === 0 ? outLen / inLen : undefined;
    for (let o = 0; o < outLen; o++) {
      const v = scale === 1 ? o : originalCoordinate(s.coord, o, scale, outLen, inLen);
      if (s.mode === 'nearest') {
        const src = Math.min(inLen - 1, Math.max(0, nearestIndex(s.nearest, v, scale < 1)));
        m[o * inLen + src] = 1;
        if (block && src !== Math.floor(o / block)) block = undefined;
      } else {
        const c = Math.max(0, Math.min(v, inLen - 1));
        const i1 = Math.min(Math.trunc(c), inLen - 1),
          i2 = Math.min(i1 + 1, inLen - 1);
        const [w1, w2] = i1 === i2 ? [0.5, 0.5] : [Math.abs(c - i2), Math.abs(c - i1)];
        m[o * inLen + i1] += w1;
        m[o * inLen + i2] += w2;
      }
    }
    maps.push({ axis: i, inLen, outLen, matrix: m, block });
  }
  return maps;
}

const checkResize = (node: NodeProto, info: CheckInfo): string | undefined => {
  if (!info.strict) {
    if (!['nearest', 'linear'].includes(attrString(node, 'mode', 'nearest'))) return `mode '${attrString(node, 'mode', 'nearest')}'`;
    return undefined;
  }
  axisMaps(node, info);
  return undefined;
};

function resizeBackward(node: NodeProto, g: string, ctx: BackwardContext): string {
  const x = node.input![0];
  const xd = ctx.dims(x);
  const rank = xd.length;
  const maps = axisMaps(node, ctx);
  let cur = g;
  const blocks = maps.filter((m) => m.block);
  if (blocks.length > 0) {
    // [.., H·s, W·t] → [.., H, s, W, t] → sum over the s and t axes.
    const split: (number | string)[] = [];
    const sumAxes: number[] = [];
    for (let i = 0; i < rank; i++) {
      const b = blocks.find((m) => m.axis === i);
      if (b) {
        split.push(b.inLen, b.block!);
        sumAxes.push(split.length - 1);
      } else split.push(xd[i]);
    }
    const shape = ctx.shapeConst(split) ?? ctx.e.ints(split.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 0 : -1)));
    cur = ctx.e.reduce('ReduceSum', ctx.e.reshape(cur, shape), sumAxes, false);
  }
  for (const m of maps) if (!m.block) cur = ctx.axisAdjoint(cur, rank, m.axis, m.matrix, m.outLen, m.inLen);
  return cur;
}

const resizeRule: GradRule = { diff: [0], constant: [1, 2, 3], check: checkResize, backward: (node, [g], ctx) => [resizeBackward(node, g!, ctx)] };

export const resizeRules: Record<string, GradRule> = { Resize: resizeRule, Upsample: resizeRule };
