/**
 * Independent references for the autodiff tests: central finite differences of the FORWARD model
 * run in onnxruntime (no backward code involved), accumulated in float64.
 */
import * as ort from 'onnxruntime-node';
import { inferShapes, type Dim } from '../../src/core/runtime/shapes';
import { encodeModel, type ModelProto } from '../../src/core/onnx/proto';
import { seededValues } from './models';

export async function shapesOf(model: ModelProto): Promise<Map<string, Dim[]>> {
  return inferShapes({ path: '<memory>', sha256: '', model, bytes: encodeModel(model) });
}

export async function session(model: ModelProto, level: 'all' | 'extended' = 'all'): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 2, graphOptimizationLevel: level });
}

export const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);

/**
 * Central differences of f(x) = scalar(outputs(x)) for every coordinate of input `name` (or the
 * listed ones). With `stack`, the 2·k perturbed copies run as one batch along dim 0 (the model's
 * batch dim must be symbolic); otherwise one run per copy.
 */
export async function centralDifferences(
  s: ort.InferenceSession,
  name: string,
  x: Float32Array,
  dims: number[],
  h: number,
  scalar: (out: Float32Array, copy: number, perCopy: number) => number,
  options: { stack?: boolean; coords?: number[]; output?: string; extraFeeds?: (copies: number) => Record<string, ort.Tensor> } = {},
): Promise<Float64Array> {
  const coords = options.coords ?? Array.from({ length: x.length }, (_, i) => i);
  const stack = options.stack ?? true;
  const output = options.output ?? s.outputNames[0];
  const result = new Float64Array(coords.length);
  const chunk = stack ? Math.max(1, Math.floor((1 << 21) / x.length)) : 1;
  for (let start = 0; start < coords.length; start += chunk) {
    const part = coords.slice(start, start + chunk);
    const copies = 2 * part.length;
    const data = new Float32Array(x.length * copies);
    const steps: number[] = [];
    part.forEach((i, j) => {
      data.set(x, 2 * j * x.length);
      data.set(x, (2 * j + 1) * x.length);
      const plus = Math.fround(x[i] + h),
        minus = Math.fround(x[i] - h);
      data[2 * j * x.length + i] = plus;
      data[(2 * j + 1) * x.length + i] = minus;
      steps.push(plus - minus);
    });
    let values: Float32Array;
    if (stack) {
      const out = await s.run({ [name]: f32(data, [dims[0] * copies, ...dims.slice(1)]), ...(options.extraFeeds?.(copies) ?? {}) }, [output]);
      values = out[output].data as Float32Array;
    } else {
      const parts: Float32Array[] = [];
      for (let c = 0; c < copies; c++) {
        const out = await s.run({ [name]: f32(data.slice(c * x.length, (c + 1) * x.length), dims), ...(options.extraFeeds?.(1) ?? {}) }, [output]);
        parts.push(out[output].data as Float32Array);
      }
      values = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
      parts.forEach((p, k) => values.set(p, k * p.length));
    }
    const per = values.length / copies;
    part.forEach((_, j) => {
      result[start + j] = (scalar(values, 2 * j, per) - scalar(values, 2 * j + 1, per)) / steps[j];
    });
  }
  return result;
}

/** <dy, out_copy> in float64. */
export const dotWith = (dy: Float32Array) => (out: Float32Array, copy: number, per: number) => {
  let s = 0;
  for (let j = 0; j < per; j++) s += dy[j] * out[copy * per + j];
  return s;
};

/** max |a − b| / max |b|: the error relative to the reference's scale. */
export function scaledMaxError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0,
    scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / Math.max(scale, 1e-12);
}

/** ‖a − b‖₂ / ‖b‖₂. */
export function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** Seeded values in [-scale, scale] kept at least `gap` away from each of `kinks` (ReLU 0, clip bounds, ...). */
export function awayFrom(n: number, seed: number, scale: number, kinks: number[], gap: number): Float32Array {
  const v = seededValues(n, seed, scale);
  for (let i = 0; i < n; i++) {
    for (const k of kinks) {
      if (Math.abs(v[i] - k) < gap) v[i] = k + (v[i] >= k ? gap : -gap) * (1 + (i % 7) / 7);
    }
  }
  return v;
}

/** A permutation of evenly spaced values (distinct, spacing `step`): no ties, no max flips under small steps. */
export function distinct(n: number, seed: number, step: number): Float32Array {
  const order = Array.from(seededValues(n, seed, 1))
    .map((v, i) => [v, i] as const)
    .sort((a, b) => a[0] - b[0]);
  const out = new Float32Array(n);
  order.forEach(([, i], rank) => (out[i] = (rank - n / 2) * step));
  return out;
}
