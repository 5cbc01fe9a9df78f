/**
 * Seeded initial values for trainable tensors, as Keras and TensorFlow.js initialise layers by
 * default: weights Glorot-uniform, U(−l, l) with l = √(6 / (fan_in + fan_out)) (fans of a conv
 * kernel [M, C, k…] are C·∏k and M·∏k; the sum, hence l, is the same for a dense weight stored
 * [in, out] or [out, in]); biases and normalisation shifts 0, normalisation scales 1, PRelu slopes
 * 0.25 (PyTorch's default; Keras starts at 0). He-uniform (l = √(6 / fan_in)) for ReLU stacks.
 * Every tensor draws from its own stream, rng.fork(name), so the values do not depend on order.
 */
import type { ModelProto } from '../onnx/proto';
import { Rng } from '../random';

const product = (v: readonly number[]) => v.reduce((a, b) => a * b, 1);

/** fan_in and fan_out of a weight: [in, out] (dense) or [M, C, k…] (conv). */
export function fans(dims: readonly number[]): { fanIn: number; fanOut: number } {
  if (dims.length < 2) return { fanIn: dims[0] ?? 1, fanOut: dims[0] ?? 1 };
  if (dims.length === 2) return { fanIn: dims[0], fanOut: dims[1] };
  const receptive = product(dims.slice(2));
  return { fanIn: dims[1] * receptive, fanOut: dims[0] * receptive };
}

/** Glorot (Xavier) uniform values of a weight of shape `dims`. */
export function glorotUniform(dims: readonly number[], rng: Rng): Float32Array {
  const { fanIn, fanOut } = fans(dims);
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return rng.uniform(new Float32Array(product(dims)), -limit, limit);
}

/** He (Kaiming) uniform values: l = √(6 / fan_in), for weights feeding a ReLU. */
export function heUniform(dims: readonly number[], rng: Rng, fanIn = fans(dims).fanIn): Float32Array {
  const limit = Math.sqrt(6 / fanIn);
  return rng.uniform(new Float32Array(product(dims)), -limit, limit);
}

/**
 * Initial values for the named initializers of `model`: by the op and slot that reads each
 * (normalisation scale 1, shift 0, PRelu slope 0.25), otherwise Glorot-uniform for rank ≥ 2 and 0
 * for vectors and scalars. Seeded by `rng.fork(name)`.
 */
export function initialValues(model: ModelProto, params: readonly string[], rng: Rng): Map<string, Float32Array> {
  const graph = model.graph!;
  const dims = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', (t.dims ?? []).map(Number)]));
  const role = new Map<string, 'one' | 'zero' | 'slope'>();
  for (const n of graph.node ?? []) {
    const ins = n.input ?? [];
    if (['BatchNormalization', 'InstanceNormalization', 'LayerNormalization'].includes(n.opType ?? '')) {
      if (ins[1]) role.set(ins[1], 'one');
      if (ins[2]) role.set(ins[2], 'zero');
    }
    if (n.opType === 'PRelu' && ins[1]) role.set(ins[1], 'slope');
  }
  const out = new Map<string, Float32Array>();
  for (const name of params) {
    const d = dims.get(name);
    if (!d) throw new Error(`initialValues: no initializer '${name}'`);
    const n = product(d);
    const r = role.get(name);
    if (r === 'one') out.set(name, new Float32Array(n).fill(1));
    else if (r === 'slope') out.set(name, new Float32Array(n).fill(0.25));
    else if (r === 'zero' || d.length < 2) out.set(name, new Float32Array(n));
    else out.set(name, glorotUniform(d, rng.fork(name)));
  }
  return out;
}
