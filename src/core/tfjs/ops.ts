/**
 * Op building blocks shared by the layers-model and graph-model converters: convolution and
 * pooling geometry as TensorFlow computes it, activations (as tfjs computes them, from ops the
 * project's autodiff differentiates), and axis mapping between TF order and a value's layout.
 */
import { f, NCHW_AXIS, homeLayout, rankOf, type Layout, type OnnxWriter, type Val } from './emit';

/** Output length of a convolution or pooling window along one axis (TF semantics; -1 unknown). */
export function convOutLength(input: number, kernel: number, stride: number, dilation: number, padding: 'valid' | 'same'): number {
  if (input < 0) return -1;
  if (padding === 'same') return Math.ceil(input / stride);
  return Math.ceil((input - (kernel - 1) * dilation) / stride);
}

/** TF's SAME padding: [before, after], the extra element after. */
export function samePads(input: number, kernel: number, stride: number, dilation: number): [number, number] {
  const out = Math.ceil(input / stride);
  const total = Math.max((out - 1) * stride + (kernel - 1) * dilation + 1 - input, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** ONNX Conv/Pool attributes for a 2-D window over an input of spatial size `hw` (TF order). */
export function windowAttrs(
  hw: number[],
  kernel: number[],
  strides: number[],
  dilations: number[],
  padding: 'valid' | 'same' | number[],
  withDilations = true,
): Record<string, number[] | string> {
  const attrs: Record<string, number[] | string> = { kernel_shape: kernel, strides };
  if (withDilations) attrs.dilations = dilations;
  if (Array.isArray(padding)) attrs.pads = padding;
  else if (padding === 'valid') attrs.pads = [0, 0, 0, 0];
  else if (hw.some((d) => d < 0)) attrs.auto_pad = 'SAME_UPPER';
  else {
    const [t, b] = samePads(hw[0], kernel[0], strides[0], dilations[0]);
    const [l, r] = samePads(hw[1], kernel[1], strides[1], dilations[1]);
    attrs.pads = [t, l, b, r];
  }
  return attrs;
}

/** Where TF axis `axis` (may be negative) of `v` lives in the tensor held in `layout`. */
export function axisIn(v: Val, axis: number, layout: Layout): number {
  const rank = rankOf(v);
  const a = axis < 0 ? axis + rank : axis;
  return layout === 'nchw' && rank === 4 ? NCHW_AXIS[a] : a;
}

export const SELU_ALPHA = 1.6732632423543772;
export const SELU_GAMMA = 1.0507009873554805;
const ERF = { p: 0.3275911, a1: 0.254829592, a2: -0.284496736, a3: 1.421413741, a4: -1.453152027, a5: 1.061405429 };

export interface ActivationOptions {
  alpha?: number;
  maxValue?: number;
  threshold?: number;
  /** Softmax / LogSoftmax axis, TF order (default -1). */
  axis?: number;
}

/** Canonical activation names: lower case, no underscores ('hard_sigmoid', 'hardSigmoid' → 'hardsigmoid'). */
export function canonicalActivation(name: unknown): string {
  if (name === null || name === undefined) return 'linear';
  if (typeof name === 'object' && 'class_name' in (name as object)) return canonicalActivation((name as { class_name: unknown }).class_name);
  return String(name).toLowerCase().replace(/_/g, '');
}

export const ACTIVATIONS = new Set([
  'linear',
  'relu',
  'relu6',
  'elu',
  'selu',
  'sigmoid',
  'hardsigmoid',
  'tanh',
  'softmax',
  'logsoftmax',
  'softplus',
  'softsign',
  'swish',
  'silu',
  'gelu',
  'gelunew',
  'mish',
  'exponential',
  'leakyrelu',
]);

/**
 * Emits activation `act` on `x`; the last node is named `name`, helpers `name/<Op>`. 'linear'
 * emits an Identity (so that the layer still has a node of its own) unless `passLinear`.
 */
export function activation(e: OnnxWriter, act: string, x: Val, name: string, o: ActivationOptions = {}): Val {
  const L = homeLayout(x);
  const un = (op: string, v: Val, n: string, attrs = {}) => e.elementwise(op, [v], n, attrs);
  const k = (value: number) => e.konst(`${name}/const`, [], [value]);
  const bin = (op: string, a: Val, b: Val, n: string) => e.elementwise(op, [a, b], n);
  const h = (op: string) => `${name}/${op}`;
  switch (act) {
    case 'linear':
      return un('Identity', x, name);
    case 'relu':
      return reluFamily(e, x, name, o);
    case 'relu6':
      return clip(e, x, 0, 6, name);
    case 'elu':
      return un('Elu', x, name, { alpha: f(o.alpha ?? 1) });
    case 'selu':
      return un('Selu', x, name, { alpha: f(SELU_ALPHA), gamma: f(SELU_GAMMA) });
    case 'sigmoid':
      return un('Sigmoid', x, name);
    case 'hardsigmoid':
      return un('HardSigmoid', x, name, { alpha: f(0.2), beta: f(0.5) });
    case 'tanh':
      return un('Tanh', x, name);
    case 'softmax':
      return un('Softmax', x, name, { axis: axisIn(x, o.axis ?? -1, L) });
    case 'logsoftmax':
      return un('LogSoftmax', x, name, { axis: axisIn(x, o.axis ?? -1, L) });
    case 'softplus':
      return un('Softplus', x, name);
    case 'exponential':
      return un('Exp', x, name);
    case 'leakyrelu':
      return un('LeakyRelu', x, name, { alpha: f(o.alpha ?? 0.2) });
    case 'softsign':
      return bin('Div', x, bin('Add', un('Abs', x, h('Abs')), k(1), h('Add')), name);
    case 'swish':
    case 'silu': {
      const s = o.alpha !== undefined && o.alpha !== 1 ? bin('Mul', x, k(o.alpha), h('Scale')) : x;
      return bin('Mul', un('Sigmoid', s, h('Sigmoid')), x, name);
    }
    case 'mish':
      return bin('Mul', x, un('Tanh', un('Softplus', x, h('Softplus')), h('Tanh')), name);
    case 'gelu': {
      // x · ½(1 + erf(x/√2)), erf as tfjs's CPU kernel computes it (Abramowitz & Stegun 7.1.26).
      const u = bin('Mul', x, k(Math.SQRT1_2), h('Scale'));
      const v = un('Abs', u, h('Abs'));
      const t = un('Reciprocal', bin('Add', bin('Mul', v, k(ERF.p), h('pv')), k(1), h('1+pv')), h('t'));
      let poly = bin('Add', bin('Mul', t, k(ERF.a5), h('a5t')), k(ERF.a4), h('poly4'));
      poly = bin('Add', bin('Mul', poly, t, h('poly4t')), k(ERF.a3), h('poly3'));
      poly = bin('Add', bin('Mul', poly, t, h('poly3t')), k(ERF.a2), h('poly2'));
      poly = bin('Add', bin('Mul', poly, t, h('poly2t')), k(ERF.a1), h('poly1'));
      const g = un('Exp', un('Neg', bin('Mul', v, v, h('v2')), h('-v2')), h('Exp'));
      const r = bin('Sub', k(1), bin('Mul', bin('Mul', poly, t, h('polyt')), g, h('tail')), h('erf_abs'));
      const isNeg = e.elementwise('Less', [u, k(0)], h('Less'), {}, 'bool');
      const erf = e.elementwise('Where', [isNeg, un('Neg', r, h('Neg')), r], h('Erf'), {}, 'float32');
      const cdf = bin('Mul', bin('Add', erf, k(1), h('1+erf')), k(0.5), h('cdf'));
      return bin('Mul', x, cdf, name);
    }
    case 'gelunew': {
      // ½x(1 + tanh(√(2/π)(x + 0.044715x³))), as tfjs's gelu_new.
      const x3 = bin('Mul', bin('Mul', x, x, h('x2')), x, h('x3'));
      const inner = bin('Mul', bin('Add', x, bin('Mul', x3, k(0.044715), h('cx3')), h('sum')), k(Math.sqrt(2 / Math.PI)), h('inner'));
      const th = bin('Add', un('Tanh', inner, h('Tanh')), k(1), h('1+tanh'));
      return bin('Mul', bin('Mul', x, k(0.5), h('half')), th, name);
    }
  }
  throw new Error(`tfjs converter: activation '${act}' has no rule`);
}

/**
 * Keras's relu(x, negative_slope, max_value, threshold): x above the threshold (capped at
 * max_value), negative_slope·(x − threshold) below it.
 */
export function reluFamily(e: OnnxWriter, x: Val, name: string, o: ActivationOptions): Val {
  const alpha = o.alpha ?? 0,
    t = o.threshold ?? 0,
    m = o.maxValue ?? undefined;
  const k = (value: number) => e.konst(`${name}/const`, [], [value]);
  const h = (op: string) => `${name}/${op}`;
  if (alpha === 0 && t === 0) return m === undefined ? e.elementwise('Relu', [x], name) : clip(e, x, 0, m, name);
  const last = m === undefined ? name : h('Relu');
  let y: Val;
  if (t === 0) {
    y = e.elementwise('LeakyRelu', [x], last, { alpha: f(alpha) });
  } else {
    const below = alpha === 0 ? k(0) : e.elementwise('Mul', [e.elementwise('Sub', [x, k(t)], h('Shift')), k(alpha)], h('Slope'));
    const on = e.elementwise('GreaterOrEqual', [x, k(t)], h('GreaterOrEqual'), {}, 'bool');
    y = e.elementwise('Where', [on, x, below], last, {}, 'float32');
  }
  return m === undefined ? y : e.elementwise('Min', [y, k(m)], name);
}

/** Clip(x, lo, hi) with scalar bounds (ONNX wants them rank 0 whatever the layout). */
export function clip(e: OnnxWriter, x: Val, lo: number, hi: number, name: string): Val {
  const L = homeLayout(x);
  const out = e.op('Clip', [e.get(x, L), e.get(e.konst(`${name}/min`, [], [lo])), e.get(e.konst(`${name}/max`, [], [hi]))], {}, name);
  return e.val(out, x.shape, L);
}
