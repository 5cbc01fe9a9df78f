/**
 * TensorFlow.js layers models (format "layers-model": a Keras topology and its weights) to ONNX.
 * Sequential and functional models; one rule per Keras layer class. Every layer is checked before
 * anything is built, and all problems come back in one UserError.
 */
import { UserError } from '../errors';
import { f, homeLayout, OnnxWriter, rankOf, sizeOf, transposeData, type Layout, type Val } from './emit';
import { ACTIVATIONS, activation, axisIn, canonicalActivation, convOutLength, reluFamily, windowAttrs } from './ops';
import { finishOutputs, type OutputPlan } from './outputs';
import type { WeightTensor } from './weights';

type Config = Record<string, unknown>;

interface TensorRef {
  layer: string;
  node: number;
  tensor: number;
}

interface KerasLayer {
  className: string;
  name: string;
  config: Config;
  /** One list of input tensors per call of the layer. */
  calls: TensorRef[][];
}

interface Topology {
  modelName: string;
  layers: KerasLayer[];
  inputs: TensorRef[];
  outputs: TensorRef[];
}

export interface ConvertedLayersModel {
  writer: OnnxWriter;
  model: ReturnType<OnnxWriter['finish']>;
  outputNote: string;
}

const TF_TO_ONNX_HINT = 'Convert the model to ONNX with tf2onnx (python -m tf2onnx.convert) and open the .onnx file instead.';

// ---- topology -------------------------------------------------------------------------------

function refOf(x: unknown): TensorRef | undefined {
  if (Array.isArray(x) && typeof x[0] === 'string') return { layer: x[0], node: Number(x[1] ?? 0), tensor: Number(x[2] ?? 0) };
  if (x && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    const hist = (o.config as Record<string, unknown> | undefined)?.keras_history;
    if (o.class_name === '__keras_tensor__' && Array.isArray(hist)) return { layer: String(hist[0]), node: Number(hist[1] ?? 0), tensor: Number(hist[2] ?? 0) };
  }
  return undefined;
}

/** The inbound tensors of one call, in the Keras 2 ([[name, node, tensor, kwargs], …]) or Keras 3 ({args: […]}) form. */
function callInputs(call: unknown): TensorRef[] {
  if (Array.isArray(call)) return call.map(refOf).filter((r): r is TensorRef => r !== undefined);
  if (call && typeof call === 'object' && 'args' in call) {
    const found: TensorRef[] = [];
    const walk = (x: unknown) => {
      const r = refOf(x);
      if (r && !Array.isArray(x)) found.push(r);
      else if (Array.isArray(x)) x.forEach(walk);
    };
    walk((call as { args: unknown }).args);
    return found;
  }
  return [];
}

function refList(x: unknown): TensorRef[] {
  if (!Array.isArray(x)) return [];
  if (typeof x[0] === 'string') return [refOf(x)!];
  return x.map(refOf).filter((r): r is TensorRef => r !== undefined);
}

export function parseTopology(raw: unknown, where: string): Topology {
  let top = raw as Config;
  if (top && typeof top === 'object' && 'model_config' in top) top = top.model_config as Config;
  const className = String(top?.class_name ?? '');
  const cfg = top?.config as Config | unknown[] | undefined;
  if (className === 'Sequential') {
    const list = (Array.isArray(cfg) ? cfg : (cfg as Config | undefined)?.layers) as Config[] | undefined;
    if (!Array.isArray(list) || list.length === 0) throw new UserError(`${where}: the Sequential model has no layers.`);
    const layers: KerasLayer[] = [];
    let prev: string | undefined;
    list.forEach((l, i) => {
      const lc = (l.config ?? {}) as Config;
      const name = String(lc.name ?? l.name ?? `${l.class_name}_${i}`);
      if (i === 0 && l.class_name !== 'InputLayer') {
        const shape = (lc.batch_input_shape as unknown[]) ?? (lc.input_shape ? [null, ...(lc.input_shape as unknown[])] : lc.batch_shape);
        const inputName = `${name}_input`;
        layers.push({
          className: 'InputLayer',
          name: inputName,
          config: { batch_input_shape: shape, dtype: lc.dtype ?? 'float32', name: inputName },
          calls: [],
        });
        prev = inputName;
      }
      layers.push({ className: String(l.class_name), name, config: lc, calls: l.class_name === 'InputLayer' ? [] : [[{ layer: prev!, node: 0, tensor: 0 }]] });
      prev = name;
    });
    const modelName = String((cfg as Config | undefined)?.name ?? 'sequential');
    return { modelName, layers, inputs: [{ layer: layers[0].name, node: 0, tensor: 0 }], outputs: [{ layer: prev!, node: 0, tensor: 0 }] };
  }
  if (className === 'Model' || className === 'Functional') {
    const c = cfg as Config;
    const list = c.layers as Config[];
    if (!Array.isArray(list)) throw new UserError(`${where}: the functional model has no layer list.`);
    const layers = list.map((l, i) => {
      const lc = (l.config ?? {}) as Config;
      const calls = Array.isArray(l.inbound_nodes) ? (l.inbound_nodes as unknown[]).map(callInputs) : [];
      return { className: String(l.class_name), name: String(l.name ?? lc.name ?? `${l.class_name}_${i}`), config: lc, calls };
    });
    return { modelName: String(c.name ?? 'model'), layers, inputs: refList(c.input_layers), outputs: refList(c.output_layers) };
  }
  throw new UserError(`${where}: model class '${className || '(none)'}' is not Sequential or a functional Model.`, TF_TO_ONNX_HINT);
}

// ---- config access --------------------------------------------------------------------------

const num = (c: Config, key: string, fallback: number): number => (typeof c[key] === 'number' ? (c[key] as number) : fallback);
const pair = (c: Config, key: string, fallback: number[]): number[] => {
  const v = c[key];
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return v as number[];
  return fallback;
};
const padding = (c: Config): 'valid' | 'same' => String(c.padding ?? 'valid').toLowerCase() as 'valid' | 'same';
/** ((top, bottom), (left, right)) from an int, a pair of ints or a pair of pairs. */
function padPairs(v: unknown, fallback: number): [[number, number], [number, number]] {
  if (typeof v === 'number')
    return [
      [v, v],
      [v, v],
    ];
  if (Array.isArray(v) && v.length === 2) {
    const p = v.map((x) => (typeof x === 'number' ? [x, x] : Array.isArray(x) ? [Number(x[0]), Number(x[1])] : [fallback, fallback]));
    return [p[0] as [number, number], p[1] as [number, number]];
  }
  return [
    [fallback, fallback],
    [fallback, fallback],
  ];
}
const useBias = (c: Config) => c.use_bias !== false;

// ---- layer rules ----------------------------------------------------------------------------

interface Ctx {
  e: OnnxWriter;
  layer: KerasLayer;
  /** Node name for this call: the layer name (first call), `<layer>/call<k>` after. */
  name: string;
  inputs: Val[];
  weight(suffix: string): WeightTensor;
  /** This call's output is a model output whose softmax is dropped: emit logits. */
  dropSoftmax: boolean;
  /** Set by the rule when it did drop the softmax. */
  dropped?: boolean;
  /** The pre-softmax value, when the rule ends in a softmax that was emitted. */
  preSoftmax?: Val;
}

interface Rule {
  /** Weight suffixes the layer reads (checked before conversion). */
  weights?(c: Config): string[];
  check?(c: Config, layer: KerasLayer): string | undefined;
  /** The layer's final activation, if it has one (for the softmax drop). */
  finalActivation?(c: Config): string;
  convert(x: Ctx): Val;
}

const CHANNELS_LAST = (c: Config) => (c.data_format && c.data_format !== 'channels_last' ? `data_format '${c.data_format}' (only channels_last)` : undefined);

function checkActivation(c: Config): string | undefined {
  const a = canonicalActivation(c.activation);
  return ACTIVATIONS.has(a) ? undefined : `activation '${JSON.stringify(c.activation)}'`;
}

const all =
  (...checks: ((c: Config) => string | undefined)[]) =>
  (c: Config) =>
    checks.map((k) => k(c)).find((x) => x);

/** The layer's activation, applied to the value built by `build` (which names its node `name` when it is the last). */
function withActivation(x: Ctx, act: string, build: (name: string, op: string) => Val, op: string, opts = {}): Val {
  if (act === 'softmax' && x.dropSoftmax) x.dropped = true;
  if (act === 'linear' || x.dropped) return build(x.name, op);
  const pre = build(`${x.name}/${op}`, op);
  if (act === 'softmax') x.preSoftmax = pre;
  return activation(x.e, act, pre, x.name, opts);
}

/** Kernel [kh, kw, in, out] → ONNX [out, in, kh, kw]. */
const kernelOIHW = (w: WeightTensor) => ({
  dims: [w.shape[3], w.shape[2], w.shape[0], w.shape[1]],
  data: transposeData(w.data as Float32Array, w.shape, [3, 2, 0, 1]),
});

function conv(
  x: Ctx,
  input: Val,
  kernel: { dims: number[]; data: ArrayLike<number> },
  bias: WeightTensor | undefined,
  c: Config,
  group: number,
  name: string,
  kernelHint: string,
): Val {
  const e = x.e;
  const hw = [input.shape[1], input.shape[2]];
  const k = [kernel.dims[2], kernel.dims[3]],
    s = pair(c, 'strides', [1, 1]),
    d = pair(c, 'dilation_rate', [1, 1]);
  const pad = padding(c);
  const ins = [e.get(input, 'nchw'), e.floatInit(kernelHint, kernel.dims, kernel.data)];
  if (bias) ins.push(e.floatInit(`${x.name}/bias`, [bias.shape[0]], bias.data));
  const out = e.op('Conv', ins, { ...windowAttrs(hw, k, s, d, pad), group }, name);
  const shape = [input.shape[0], convOutLength(hw[0], k[0], s[0], d[0], pad), convOutLength(hw[1], k[1], s[1], d[1], pad), kernel.dims[0]];
  return e.val(out, shape, 'nchw');
}

/** Depthwise kernel [kh, kw, in, m] → grouped-conv kernel [in·m, 1, kh, kw] (output channel c·m + j). */
function depthwiseKernel(w: WeightTensor) {
  const [kh, kw, cin, m] = w.shape;
  return { dims: [cin * m, 1, kh, kw], data: transposeData(w.data as Float32Array, w.shape, [2, 3, 0, 1]) };
}

const actOf = (c: Config) => canonicalActivation(c.activation);

const RULES: Record<string, Rule> = {
  InputLayer: {
    convert: () => {
      throw new Error('unreachable');
    },
  },
  Conv2D: {
    weights: (c) => ['kernel', ...(useBias(c) ? ['bias'] : [])],
    check: all(CHANNELS_LAST, checkActivation, (c) => (padding(c) === ('causal' as string) ? "padding 'causal'" : undefined)),
    finalActivation: actOf,
    convert: (x) =>
      withActivation(
        x,
        actOf(x.layer.config),
        (name) => {
          const w = x.weight('kernel');
          const groups = num(x.layer.config, 'groups', 1);
          return conv(x, x.inputs[0], kernelOIHW(w), useBias(x.layer.config) ? x.weight('bias') : undefined, x.layer.config, groups, name, `${x.name}/kernel`);
        },
        'Conv',
      ),
  },
  DepthwiseConv2D: {
    weights: (c) => ['depthwise_kernel', ...(useBias(c) ? ['bias'] : [])],
    check: all(CHANNELS_LAST, checkActivation),
    finalActivation: actOf,
    convert: (x) =>
      withActivation(
        x,
        actOf(x.layer.config),
        (name) => {
          const w = x.weight('depthwise_kernel');
          return conv(
            x,
            x.inputs[0],
            depthwiseKernel(w),
            useBias(x.layer.config) ? x.weight('bias') : undefined,
            x.layer.config,
            w.shape[2],
            name,
            `${x.name}/depthwise_kernel`,
          );
        },
        'Conv',
      ),
  },
  SeparableConv2D: {
    weights: (c) => ['depthwise_kernel', 'pointwise_kernel', ...(useBias(c) ? ['bias'] : [])],
    check: all(CHANNELS_LAST, checkActivation),
    finalActivation: actOf,
    convert: (x) =>
      withActivation(
        x,
        actOf(x.layer.config),
        (name) => {
          const dw = x.weight('depthwise_kernel');
          const depth = conv(x, x.inputs[0], depthwiseKernel(dw), undefined, x.layer.config, dw.shape[2], `${x.name}/depthwise`, `${x.name}/depthwise_kernel`);
          return conv(
            x,
            depth,
            kernelOIHW(x.weight('pointwise_kernel')),
            useBias(x.layer.config) ? x.weight('bias') : undefined,
            {},
            1,
            name,
            `${x.name}/pointwise_kernel`,
          );
        },
        'Conv',
      ),
  },
  Conv2DTranspose: {
    weights: (c) => ['kernel', ...(useBias(c) ? ['bias'] : [])],
    check: all(CHANNELS_LAST, checkActivation, (c) => (pair(c, 'dilation_rate', [1, 1]).some((d) => d !== 1) ? 'dilation_rate ≠ 1' : undefined)),
    finalActivation: actOf,
    convert: (x) => withActivation(x, actOf(x.layer.config), (name) => convTranspose(x, name), 'ConvTranspose'),
  },
  Dense: {
    weights: (c) => ['kernel', ...(useBias(c) ? ['bias'] : [])],
    check: checkActivation,
    finalActivation: actOf,
    convert: (x) =>
      withActivation(
        x,
        actOf(x.layer.config),
        (name) => {
          const e = x.e,
            input = x.inputs[0];
          const w = x.weight('kernel');
          const W = e.floatInit(`${x.name}/kernel`, w.shape, w.data);
          const bias = useBias(x.layer.config) ? x.weight('bias') : undefined;
          const shape = [...input.shape.slice(0, -1), w.shape[1]];
          if (rankOf(input) === 2) {
            const ins = [e.get(input), W, ...(bias ? [e.floatInit(`${x.name}/bias`, bias.shape, bias.data)] : [])];
            return e.val(e.op('Gemm', ins, {}, name), shape, 'tf');
          }
          if (!bias) return e.val(e.op('MatMul', [e.get(input), W], {}, name), shape, 'tf');
          const mm = e.op('MatMul', [e.get(input), W], {}, `${name}/MatMul`);
          return e.val(e.op('Add', [mm, e.floatInit(`${x.name}/bias`, bias.shape, bias.data)], {}, name), shape, 'tf');
        },
        'Gemm',
      ),
  },
  MaxPooling2D: { check: CHANNELS_LAST, convert: (x) => pool(x, 'MaxPool') },
  AveragePooling2D: { check: CHANNELS_LAST, convert: (x) => pool(x, 'AveragePool') },
  GlobalAveragePooling2D: { check: CHANNELS_LAST, convert: (x) => globalPool(x, 'GlobalAveragePool') },
  GlobalMaxPooling2D: { check: CHANNELS_LAST, convert: (x) => globalPool(x, 'GlobalMaxPool') },
  Flatten: {
    check: CHANNELS_LAST,
    convert: (x) => {
      const v = x.inputs[0];
      const shape = [v.shape[0], v.shape.slice(1).some((d) => d < 0) ? -1 : sizeOf(v.shape.slice(1))];
      return x.e.val(x.e.op('Flatten', [x.e.get(v)], { axis: 1 }, x.name), shape, 'tf');
    },
  },
  Reshape: {
    check: (c) => (Array.isArray(c.target_shape) ? undefined : 'no target_shape'),
    convert: (x) => {
      const v = x.inputs[0];
      const target = (x.layer.config.target_shape as number[]).map((d) => (d === null ? -1 : d));
      const known = sizeOf(v.shape.slice(1));
      const shape = [v.shape[0], ...target.map((d) => (d === -1 && known > 0 ? known / sizeOf(target.filter((t) => t !== -1)) : d))];
      const s = x.e.int64Init(`${x.name}/shape`, [0, ...target]);
      return x.e.val(x.e.op('Reshape', [x.e.get(v), s], {}, x.name), shape, 'tf');
    },
  },
  Permute: {
    check: (c) => (Array.isArray(c.dims) ? undefined : 'no dims'),
    convert: (x) => {
      const v = x.inputs[0];
      const perm = [0, ...(x.layer.config.dims as number[])];
      return x.e.val(
        x.e.op('Transpose', [x.e.get(v)], { perm }, x.name),
        perm.map((p) => v.shape[p]),
        'tf',
      );
    },
  },
  Activation: {
    check: checkActivation,
    finalActivation: actOf,
    convert: (x) => {
      const act = actOf(x.layer.config);
      if (act === 'softmax' && x.dropSoftmax) {
        x.dropped = true;
        return x.inputs[0];
      }
      if (act === 'softmax') x.preSoftmax = x.inputs[0];
      return activation(x.e, act, x.inputs[0], x.name);
    },
  },
  ReLU: {
    convert: (x) => {
      const c = x.layer.config;
      const m = c.max_value ?? c.maxValue;
      return reluFamily(x.e, x.inputs[0], x.name, {
        maxValue: typeof m === 'number' ? m : undefined,
        alpha: num(c, 'negative_slope', 0),
        threshold: num(c, 'threshold', 0),
      });
    },
  },
  LeakyReLU: {
    convert: (x) => x.e.elementwise('LeakyRelu', [x.inputs[0]], x.name, { alpha: f(num(x.layer.config, 'alpha', num(x.layer.config, 'negative_slope', 0.3))) }),
  },
  ELU: { convert: (x) => x.e.elementwise('Elu', [x.inputs[0]], x.name, { alpha: f(num(x.layer.config, 'alpha', 1)) }) },
  ThresholdedReLU: {
    convert: (x) => {
      const e = x.e,
        v = x.inputs[0];
      const on = e.elementwise('Greater', [v, e.konst(`${x.name}/theta`, [], [num(x.layer.config, 'theta', 1)])], `${x.name}/Greater`, {}, 'bool');
      return e.elementwise('Where', [on, v, e.konst(`${x.name}/zero`, [], [0])], x.name, {}, 'float32');
    },
  },
  PReLU: {
    weights: () => ['alpha'],
    convert: (x) => {
      const a = x.weight('alpha');
      const slope = x.e.konst(`${x.name}/alpha`, a.shape, a.data);
      return x.e.elementwise('PRelu', [x.inputs[0], slope], x.name);
    },
  },
  Softmax: {
    check: (c) => (Array.isArray(c.axis) && c.axis.length > 1 ? 'softmax over several axes' : undefined),
    finalActivation: () => 'softmax',
    convert: (x) => {
      const raw = x.layer.config.axis;
      const axis = Array.isArray(raw) ? Number(raw[0]) : typeof raw === 'number' ? raw : 1; // tfjs's Softmax layer defaults to axis 1
      const v = x.inputs[0];
      const last = axis === -1 || axis === rankOf(v) - 1;
      if (x.dropSoftmax && last) {
        x.dropped = true;
        return v;
      }
      if (last) x.preSoftmax = v;
      return activation(x.e, 'softmax', v, x.name, { axis });
    },
  },
  BatchNormalization: {
    weights: (c) => [...(c.scale !== false ? ['gamma'] : []), ...(c.center !== false ? ['beta'] : []), 'moving_mean', 'moving_variance'],
    check: (c) => (Array.isArray(c.axis) && c.axis.length > 1 ? 'normalisation over several axes' : undefined),
    convert: (x) => batchNorm(x),
  },
  LayerNormalization: {
    weights: (c) => [...(c.scale !== false ? ['gamma'] : []), ...(c.center !== false ? ['beta'] : [])],
    convert: (x) => layerNorm(x),
  },
  Dropout: { convert: identity },
  SpatialDropout1D: { convert: identity },
  SpatialDropout2D: { convert: identity },
  GaussianNoise: { convert: identity },
  GaussianDropout: { convert: identity },
  AlphaDropout: { convert: identity },
  ActivityRegularization: { convert: identity },
  ZeroPadding2D: {
    check: CHANNELS_LAST,
    convert: (x) => {
      const [[t, b], [l, r]] = padPairs(x.layer.config.padding, 1);
      const v = x.inputs[0],
        L = homeLayout(v);
      const tfPads = [0, t, l, 0, 0, b, r, 0];
      const pads = L === 'nchw' ? [0, 0, t, l, 0, 0, b, r] : tfPads;
      const out = x.e.op('Pad', [x.e.get(v, L), x.e.int64Init(`${x.name}/pads`, pads)], { mode: 'constant' }, x.name);
      const add = (d: number, p: number) => (d < 0 ? -1 : d + p);
      return x.e.val(out, [v.shape[0], add(v.shape[1], t + b), add(v.shape[2], l + r), v.shape[3]], L);
    },
  },
  Cropping2D: {
    check: CHANNELS_LAST,
    convert: (x) => {
      const [[t, b], [l, r]] = padPairs(x.layer.config.cropping, 0);
      const v = x.inputs[0],
        L = homeLayout(v);
      const axes = [axisIn(v, 1, L), axisIn(v, 2, L)];
      const BIG = 2 ** 53 - 1;
      const ins = [
        x.e.get(v, L),
        x.e.int64Init(`${x.name}/starts`, [t, l]),
        x.e.int64Init(`${x.name}/ends`, [b ? -b : BIG, r ? -r : BIG]),
        x.e.int64Init(`${x.name}/axes`, axes),
      ];
      const sub = (d: number, p: number) => (d < 0 ? -1 : d - p);
      return x.e.val(x.e.op('Slice', ins, {}, x.name), [v.shape[0], sub(v.shape[1], t + b), sub(v.shape[2], l + r), v.shape[3]], L);
    },
  },
  UpSampling2D: {
    check: all(CHANNELS_LAST, (c) =>
      c.interpolation && !['nearest', 'bilinear'].includes(String(c.interpolation)) ? `interpolation '${c.interpolation}'` : undefined,
    ),
    convert: (x) => {
      const [sh, sw] = pair(x.layer.config, 'size', [2, 2]);
      const v = x.inputs[0];
      const bilinear = x.layer.config.interpolation === 'bilinear';
      return resize(
        x.e,
        v,
        [v.shape[1] < 0 ? -1 : v.shape[1] * sh, v.shape[2] < 0 ? -1 : v.shape[2] * sw],
        [sh, sw],
        bilinear ? 'linear' : 'nearest',
        false,
        false,
        x.name,
      );
    },
  },
  Add: { convert: (x) => merge(x, 'Sum') },
  Subtract: { check: () => undefined, convert: (x) => x.e.elementwise('Sub', x.inputs, x.name) },
  Multiply: {
    convert: (x) =>
      x.inputs.slice(1).reduce((acc, v, i) => x.e.elementwise('Mul', [acc, v], i === x.inputs.length - 2 ? x.name : `${x.name}/Mul${i}`), x.inputs[0]),
  },
  Average: {
    convert: (x) => {
      const sum = merge(x, 'Sum', `${x.name}/Sum`);
      return x.e.elementwise('Mul', [sum, x.e.konst(`${x.name}/scale`, [], [1 / x.inputs.length])], x.name);
    },
  },
  Maximum: { convert: (x) => merge(x, 'Max') },
  Minimum: { convert: (x) => merge(x, 'Min') },
  Concatenate: {
    convert: (x) => {
      const e = x.e,
        vs = x.inputs;
      const rank = rankOf(vs[0]);
      const axis = num(x.layer.config, 'axis', -1);
      const a = axis < 0 ? axis + rank : axis;
      const L: Layout = rank === 4 && vs.every((v) => v.as.nchw !== undefined || v.konst) ? 'nchw' : 'tf';
      const out = e.op(
        'Concat',
        vs.map((v) => e.get(v, L)),
        { axis: axisIn(vs[0], a, L) },
        x.name,
      );
      const shape = [...vs[0].shape];
      shape[a] = vs.some((v) => v.shape[a] < 0) ? -1 : vs.reduce((s, v) => s + v.shape[a], 0);
      return e.val(out, shape, L);
    },
  },
  Rescaling: {
    convert: (x) => {
      const c = x.layer.config;
      const scale = c.scale as number | number[],
        offset = (c.offset ?? 0) as number | number[];
      const asVal = (v: number | number[], n: string) => (Array.isArray(v) ? x.e.konst(`${x.name}/${n}`, [v.length], v) : x.e.konst(`${x.name}/${n}`, [], [v]));
      const zero = Array.isArray(offset) ? offset.every((o) => o === 0) : offset === 0;
      if (zero) return x.e.elementwise('Mul', [x.inputs[0], asVal(scale, 'scale')], x.name);
      return x.e.elementwise('Add', [x.e.elementwise('Mul', [x.inputs[0], asVal(scale, 'scale')], `${x.name}/Mul`), asVal(offset, 'offset')], x.name);
    },
  },
};

function identity(x: Ctx): Val {
  return x.e.elementwise('Identity', [x.inputs[0]], x.name);
}

function merge(x: Ctx, op: 'Sum' | 'Max' | 'Min', name = x.name): Val {
  if (x.inputs.length === 2 && op === 'Sum') return x.e.elementwise('Add', x.inputs, name);
  return x.e.elementwise(op, x.inputs, name);
}

function pool(x: Ctx, op: 'MaxPool' | 'AveragePool'): Val {
  const c = x.layer.config,
    v = x.inputs[0];
  const k = pair(c, 'pool_size', [2, 2]);
  const s = c.strides === null || c.strides === undefined ? k : pair(c, 'strides', k);
  const pad = padding(c);
  const hw = [v.shape[1], v.shape[2]];
  const out = x.e.op(op, [x.e.get(v, 'nchw')], windowAttrs(hw, k, s, [1, 1], pad, false), x.name);
  return x.e.val(out, [v.shape[0], convOutLength(hw[0], k[0], s[0], 1, pad), convOutLength(hw[1], k[1], s[1], 1, pad), v.shape[3]], 'nchw');
}

function globalPool(x: Ctx, op: string): Val {
  const v = x.inputs[0];
  const keep = x.layer.config.keepdims === true;
  if (keep) return x.e.val(x.e.op(op, [x.e.get(v, 'nchw')], {}, x.name), [v.shape[0], 1, 1, v.shape[3]], 'nchw');
  const g = x.e.op(op, [x.e.get(v, 'nchw')], {}, `${x.name}/${op}`);
  return x.e.val(x.e.op('Flatten', [g], { axis: 1 }, x.name), [v.shape[0], v.shape[3]], 'tf');
}

export function resize(
  e: OnnxWriter,
  v: Val,
  outHW: number[],
  scale: number[],
  mode: 'nearest' | 'linear',
  alignCorners: boolean,
  halfPixel: boolean,
  name: string,
): Val {
  // TF nearest: floor(x·in/out) (asymmetric), floor((x + ½)·in/out) (half-pixel: ONNX half_pixel
  // is that minus ½, rounded half up), round-half-up(x·(in−1)/(out−1)) (align corners).
  const coord = alignCorners ? 'align_corners' : halfPixel ? 'half_pixel' : 'asymmetric';
  const attrs: Record<string, string> = { mode, coordinate_transformation_mode: coord };
  if (mode === 'nearest') attrs.nearest_mode = alignCorners || halfPixel ? 'round_prefer_ceil' : 'floor';
  const roi = e.floatInit(`${name}/roi`, [0], []);
  let ins: string[];
  if (outHW.every((d) => d > 0) && v.shape[0] > 0 && v.shape[3] > 0) {
    ins = [e.get(v, 'nchw'), roi, '', e.int64Init(`${name}/sizes`, [v.shape[0], v.shape[3], outHW[0], outHW[1]])];
  } else if (scale.every((s) => s > 0)) {
    ins = [e.get(v, 'nchw'), roi, e.floatInit(`${name}/scales`, [4], [1, 1, scale[0], scale[1]])];
  } else {
    // Sizes from the runtime batch and channels and the static output size.
    const shp = e.op('Shape', [e.get(v, 'nchw')], {}, `${name}/Shape`);
    const nc = e.op('Slice', [shp, e.int64Init(`${name}/s0`, [0]), e.int64Init(`${name}/s2`, [2])], {}, `${name}/NC`);
    const sizes = e.op('Concat', [nc, e.int64Init(`${name}/hw`, outHW)], { axis: 0 }, `${name}/sizes`);
    ins = [e.get(v, 'nchw'), roi, '', sizes];
  }
  return e.val(e.op('Resize', ins, attrs, name), [v.shape[0], outHW[0], outHW[1], v.shape[3]], 'nchw');
}

function convTranspose(x: Ctx, name: string): Val {
  const e = x.e,
    c = x.layer.config,
    v = x.inputs[0];
  const w = x.weight('kernel'); // [kh, kw, out, in]
  const [kh, kw, cout] = w.shape;
  const s = pair(c, 'strides', [1, 1]);
  const pad = padding(c);
  const outPadding = c.output_padding === null || c.output_padding === undefined ? undefined : pair(c, 'output_padding', [0, 0]);
  const hw = [v.shape[1], v.shape[2]],
    k = [kh, kw];
  if (hw.some((d) => d < 0)) throw new UserError(`Layer '${x.layer.name}' (Conv2DTranspose) needs fixed spatial input dimensions.`);
  const out = hw.map((d, i) => {
    if (outPadding) return (d - 1) * s[i] + k[i] - 2 * (pad === 'same' ? Math.floor(k[i] / 2) : 0) + outPadding[i];
    return pad === 'valid' ? d * s[i] + Math.max(k[i] - s[i], 0) : d * s[i];
  });
  // TF's conv2d_transpose is the gradient of conv2d(out → in) with `pad`: its padding, then ONNX's output_padding fills the rest.
  const pads = [0, 0, 0, 0],
    op = [0, 0];
  for (let i = 0; i < 2; i++) {
    let before = 0,
      total = 0;
    if (pad === 'same') {
      total = Math.max((hw[i] - 1) * s[i] + k[i] - out[i], 0);
      before = Math.floor(total / 2);
    } else if (outPadding) {
      total = 0;
    }
    pads[i] = before;
    pads[i + 2] = total - before;
    op[i] = out[i] - ((hw[i] - 1) * s[i] + k[i] - total);
  }
  if (op.some((p, i) => p < 0 || (p >= Math.max(s[i], 1) && p !== 0))) {
    throw new UserError(`Layer '${x.layer.name}' (Conv2DTranspose): output size [${out}] cannot be expressed as an ONNX ConvTranspose.`, TF_TO_ONNX_HINT);
  }
  const W = e.floatInit(`${x.name}/kernel`, [w.shape[3], cout, kh, kw], transposeData(w.data as Float32Array, w.shape, [3, 2, 0, 1]));
  const bias = useBias(c) ? x.weight('bias') : undefined;
  const ins = [e.get(v, 'nchw'), W, ...(bias ? [e.floatInit(`${x.name}/bias`, bias.shape, bias.data)] : [])];
  const o = e.op('ConvTranspose', ins, { kernel_shape: k, strides: s, pads, output_padding: op }, name);
  return e.val(o, [v.shape[0], out[0], out[1], cout], 'nchw');
}

function batchNorm(x: Ctx): Val {
  const e = x.e,
    c = x.layer.config,
    v = x.inputs[0];
  const rank = rankOf(v);
  const rawAxis = Array.isArray(c.axis) ? Number(c.axis[0]) : num(c, 'axis', -1);
  const axis = rawAxis < 0 ? rawAxis + rank : rawAxis;
  const eps = num(c, 'epsilon', 1e-3);
  const mean = x.weight('moving_mean'),
    variance = x.weight('moving_variance');
  const n = mean.shape[0];
  const gamma = c.scale !== false ? x.weight('gamma').data : new Float32Array(n).fill(1);
  const beta = c.center !== false ? x.weight('beta').data : new Float32Array(n);
  // ONNX BatchNormalization normalises axis 1: the channels of an NCHW value, or axis 1 of a rank-2 one.
  const L: Layout | undefined = rank === 4 && axis === 3 ? 'nchw' : axis === 1 && rank >= 2 && !(rank === 4 && homeLayout(v) === 'nchw') ? 'tf' : undefined;
  if (L) {
    const ins = [
      e.get(v, L),
      e.floatInit(`${x.name}/gamma`, [n], gamma),
      e.floatInit(`${x.name}/beta`, [n], beta),
      e.floatInit(`${x.name}/moving_mean`, [n], mean.data),
      e.floatInit(`${x.name}/moving_variance`, [n], variance.data),
    ];
    return e.val(e.op('BatchNormalization', ins, { epsilon: f(eps) }, x.name), v.shape, L);
  }
  // Other axes: (x − mean)·γ/√(var + ε) + β with constants shaped along the axis.
  const shape = v.shape.map((_, i) => (i === axis ? n : 1)).slice(1);
  const scale = Float32Array.from(gamma, (g, i) => g / Math.sqrt(variance.data[i] + eps));
  const shift = Float32Array.from(beta, (b, i) => b - mean.data[i] * scale[i]);
  const mul = e.elementwise('Mul', [v, e.konst(`${x.name}/scale`, shape, scale)], `${x.name}/Mul`);
  return e.elementwise('Add', [mul, e.konst(`${x.name}/shift`, shape, shift)], x.name);
}

function layerNorm(x: Ctx): Val {
  const e = x.e,
    c = x.layer.config,
    v = x.inputs[0];
  const rank = rankOf(v);
  const axes = (Array.isArray(c.axis) ? (c.axis as number[]) : [num(c, 'axis', -1)]).map((a) => (a < 0 ? a + rank : a)).sort();
  const eps = num(c, 'epsilon', 1e-3);
  const L = homeLayout(v);
  const onnxAxes = axes.map((a) => axisIn(v, a, L));
  const h = (s: string) => `${x.name}/${s}`;
  const mean = e.val(
    e.op('ReduceMean', [e.get(v, L)], { axes: onnxAxes, keepdims: 1 }, h('mean')),
    v.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
    L,
  );
  const centred = e.elementwise('Sub', [v, mean], h('centred'));
  const sq = e.elementwise('Mul', [centred, centred], h('square'));
  const variance = e.val(e.op('ReduceMean', [e.get(sq, L)], { axes: onnxAxes, keepdims: 1 }, h('variance')), mean.shape, L);
  const std = e.elementwise('Sqrt', [e.elementwise('Add', [variance, e.konst(h('epsilon'), [], [eps])], h('var+eps'))], h('std'));
  let y = e.elementwise('Div', [centred, std], c.scale === false && c.center === false ? x.name : h('normalized'));
  const pshape = v.shape.map((d, i) => (axes.includes(i) ? d : 1)).slice(axes[0]);
  if (c.scale !== false) y = e.elementwise('Mul', [y, e.konst(h('gamma'), pshape, x.weight('gamma').data)], c.center === false ? x.name : h('scaled'));
  if (c.center !== false) y = e.elementwise('Add', [y, e.konst(h('beta'), pshape, x.weight('beta').data)], x.name);
  return y;
}

// ---- weights --------------------------------------------------------------------------------

/** Finds `<layer>/<suffix>` among the weights (also under name scopes, with a `:0` suffix, …). */
function findWeight(weights: Map<string, WeightTensor>, layer: string, suffix: string): WeightTensor | undefined {
  const exact = weights.get(`${layer}/${suffix}`) ?? weights.get(`${layer}/${suffix}:0`);
  if (exact) return exact;
  const matches = [...weights.values()].filter((w) => {
    const parts = w.name.replace(/:\d+$/, '').split('/');
    return parts[parts.length - 1] === suffix && parts.slice(0, -1).includes(layer);
  });
  if (matches.length === 1) return matches[0];
  const direct = matches.filter((w) => {
    const parts = w.name.replace(/:\d+$/, '').split('/');
    return parts[parts.length - 2] === layer;
  });
  return direct.length === 1 ? direct[0] : undefined;
}

// ---- the converter --------------------------------------------------------------------------

export function convertLayersModel(
  topologyRaw: unknown,
  weights: Map<string, WeightTensor>,
  where: string,
  meta: { producer: string; producerVersion?: string },
): ConvertedLayersModel {
  const topo = parseTopology(topologyRaw, where);
  const byName = new Map(topo.layers.map((l) => [l.name, l]));

  // 1. Every problem, before any work.
  const problems: string[] = [];
  for (const l of topo.layers) {
    const rule = RULES[l.className];
    if (!rule) {
      problems.push(
        `layer '${l.name}': class ${l.className} is not supported${['Sequential', 'Model', 'Functional'].includes(l.className) ? ' (a nested model)' : ''}`,
      );
      continue;
    }
    if (l.className === 'InputLayer') {
      const d = l.config.dtype as unknown;
      // Keras 3 writes dtypes as DTypePolicy objects: {class_name: 'DTypePolicy', config: {name: 'float32'}}.
      const dtype = typeof d === 'string' ? d : String((d as { config?: { name?: string } } | undefined)?.config?.name ?? 'float32');
      const shape = (l.config.batch_input_shape ?? l.config.batch_shape) as unknown[];
      if (dtype !== 'float32') problems.push(`input layer '${l.name}': dtype ${dtype} (an image classifier takes float32)`);
      if (!Array.isArray(shape)) problems.push(`input layer '${l.name}': no batch_input_shape`);
      continue;
    }
    const why = rule.check?.(l.config, l);
    if (why) problems.push(`layer '${l.name}' (${l.className}): ${why}`);
    for (const suffix of rule.weights?.(l.config) ?? []) {
      const w = findWeight(weights, l.name, suffix);
      if (!w) problems.push(`layer '${l.name}' (${l.className}): weight '${l.name}/${suffix}' is missing from the weights manifest`);
      else if (w.dtype !== 'float32') problems.push(`layer '${l.name}' (${l.className}): weight '${w.name}' has dtype ${w.dtype}`);
    }
    for (const call of l.calls) for (const r of call) if (!byName.has(r.layer)) problems.push(`layer '${l.name}': input from unknown layer '${r.layer}'`);
    if (l.calls.some((call) => call.length === 0)) problems.push(`layer '${l.name}' (${l.className}): a call without inputs`);
  }
  for (const r of [...topo.inputs, ...topo.outputs]) if (!byName.has(r.layer)) problems.push(`model input/output '${r.layer}' is not a layer of the model`);
  if (topo.inputs.length === 0) problems.push('the model lists no inputs');
  if (problems.length) {
    throw new UserError(`${where}: this TensorFlow.js layers model cannot be converted to ONNX:\n  - ${problems.join('\n  - ')}`, TF_TO_ONNX_HINT);
  }

  // 2. Which outputs end in a softmax that can be dropped (nothing else reads them).
  const consumers = new Map<string, number>();
  for (const l of topo.layers)
    for (const call of l.calls)
      for (const r of call) consumers.set(`${r.layer}:${r.node}:${r.tensor}`, (consumers.get(`${r.layer}:${r.node}:${r.tensor}`) ?? 0) + 1);
  const key = (r: TensorRef) => `${r.layer}:${r.node}:${r.tensor}`;
  const endsInSoftmax = (l: KerasLayer) => RULES[l.className]?.finalActivation?.(l.config) === 'softmax';
  const drop = new Set(topo.outputs.filter((r) => endsInSoftmax(byName.get(r.layer)!) && !consumers.get(key(r))).map(key));

  // 3. Convert, in dependency order.
  const e = new OnnxWriter();
  const values = new Map<string, Val>();
  const preSoftmax = new Map<string, Val>();
  const dropped = new Set<string>();
  for (const r of topo.inputs) {
    const l = byName.get(r.layer)!;
    const shape = ((l.config.batch_input_shape ?? l.config.batch_shape) as (number | null)[]).map((d) => (d === null || d === undefined ? -1 : d));
    values.set(key(r), e.input(l.name, shape));
  }
  const pending = topo.layers.flatMap((l) => (l.className === 'InputLayer' ? [] : l.calls.map((call, k) => ({ l, call, k }))));
  while (pending.length) {
    const i = pending.findIndex((p) => p.call.every((r) => values.has(key(r))));
    if (i < 0) {
      throw new UserError(`${where}: layers ${pending.map((p) => `'${p.l.name}'`).join(', ')} cannot be reached from the model inputs.`, TF_TO_ONNX_HINT);
    }
    const { l, call, k } = pending.splice(i, 1)[0];
    const outRef = { layer: l.name, node: k, tensor: 0 };
    const ctx: Ctx = {
      e,
      layer: l,
      name: k === 0 ? l.name : `${l.name}/call${k}`,
      inputs: call.map((r) => values.get(key(r))!),
      weight: (suffix) => findWeight(weights, l.name, suffix)!,
      dropSoftmax: drop.has(key(outRef)),
    };
    const out = RULES[l.className].convert(ctx);
    values.set(key(outRef), out);
    if (ctx.preSoftmax) preSoftmax.set(key(outRef), ctx.preSoftmax);
    if (ctx.dropped) dropped.add(key(outRef));
  }

  // 4. Outputs: logits where the softmax was dropped (or is known), else as the model has them.
  const plans: OutputPlan[] = topo.outputs.map((r) => {
    const l = byName.get(r.layer)!;
    const v = values.get(key(r));
    if (!v) throw new UserError(`${where}: output '${r.layer}' was never computed.`);
    if (dropped.has(key(r))) return { val: v, kind: 'logits', note: `logits (pre-softmax of layer ${l.name})` };
    const pre = preSoftmax.get(key(r));
    if (pre) return { val: pre, kind: 'logits', note: `logits (pre-softmax of layer ${l.name})` };
    if (l.className === 'Average' && l.calls[r.node]?.every((ir) => endsInSoftmax(byName.get(ir.layer)!))) {
      return { val: v, kind: 'log', note: `log-probabilities: Log of layer ${l.name} (an average of softmax outputs; no pre-softmax tensor exists)` };
    }
    return { val: v, kind: 'as-is', note: `the model's own output (layer ${l.name} has no final softmax)` };
  });
  const { model, note } = finishOutputs(e, plans, {
    producer: meta.producer,
    producerVersion: meta.producerVersion,
    docString: `Converted by Robustness Lab from the TensorFlow.js layers model '${topo.modelName}'.`,
    source: 'tfjs layers-model',
  });
  return { writer: e, model, outputNote: note };
}
