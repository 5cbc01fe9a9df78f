/**
 * Dense networks, the small models the defenses train (the dAE's encoder/decoder, the retrieval
 * paper head): y = f_L(… f_1(x·W_1 + b_1) …), each layer a MatMul with W [in, out], an Add of b
 * [out] and an activation, as one ONNX model (opset 13) with the weights as initializers. fitDense
 * trains such a stack with the Trainer and reads the trained layers back; denseForward is the
 * same computation in plain JS (float64 accumulation) for diagnostics and tests.
 */
import { GraphBuilder, makeModel } from '../onnx/builder';
import { tensorValueInfo } from '../onnx/cut';
import type { ModelProto, TensorProto } from '../onnx/proto';
import { floatTensor, tensorFloat32 } from '../onnx/tensor-proto';
import type { Optimizer } from '../onnx/autodiff/train-step';
import type { TrainingLoss } from '../onnx/autodiff/train-loss';
import type { Rng } from '../random';
import type { Provider, SessionOptions } from '../runtime/session';
import { glorotUniform, heUniform } from './init';
import { Trainer, type EpochReport, type FitOptions, type TrainSet } from './trainer';

export type DenseActivation = 'linear' | 'relu' | 'sigmoid' | 'tanh';

export interface DenseLayer {
  inputs: number;
  outputs: number;
  activation: DenseActivation;
  /** [inputs × outputs] row-major: w[i·outputs + k] multiplies input i into output k. */
  w: Float32Array;
  /** [outputs]. */
  b: Float32Array;
}

export const DENSE_IO = { input: 'x', output: 'y' } as const;

const ACTIVATION_OPS: Record<DenseActivation, string | undefined> = { linear: undefined, relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh' };

/** Initializer names of layer `i`. */
export function denseParamNames(i: number): { w: string; b: string } {
  return { w: `dense${i}_w`, b: `dense${i}_b` };
}

/** The stack as one ONNX model: input 'x' [N, in], output 'y' [N, out]; the trainable initializers in layer order (w, b, w, b, …). */
export function denseModel(layers: readonly DenseLayer[]): { model: ModelProto; params: string[] } {
  if (layers.length === 0) throw new RangeError('denseModel: no layers');
  const g = new GraphBuilder('dense/');
  const initializers: TensorProto[] = [];
  const params: string[] = [];
  let x: string = DENSE_IO.input;
  layers.forEach((layer, i) => {
    if (i > 0 && layers[i - 1].outputs !== layer.inputs)
      throw new RangeError(`denseModel: layer ${i} takes ${layer.inputs} inputs, layer ${i - 1} gives ${layers[i - 1].outputs}`);
    const { w, b } = denseParamNames(i);
    initializers.push(floatTensor(w, [layer.inputs, layer.outputs], layer.w), floatTensor(b, [layer.outputs], layer.b));
    params.push(w, b);
    const last = i === layers.length - 1;
    const act = ACTIVATION_OPS[layer.activation];
    const pre = last && !act ? DENSE_IO.output : g.fresh('pre');
    g.node('Add', [g.op('MatMul', [x, w]), b], {}, [pre]);
    if (act) {
      x = last ? DENSE_IO.output : g.fresh(act.toLowerCase());
      g.node(act, [pre], {}, [x]);
    } else x = pre;
  });
  const graph = g.graph(
    'dense',
    [tensorValueInfo(DENSE_IO.input, ['N', layers[0].inputs])],
    [tensorValueInfo(DENSE_IO.output, ['N', layers[layers.length - 1].outputs])],
    initializers,
  );
  return { model: makeModel(graph, 13), params };
}

/** The layers of `shape` with the weights read back from a dense model's initializers. */
export function denseLayersOf(model: ModelProto, shape: readonly DenseLayer[]): DenseLayer[] {
  const inits = new Map((model.graph?.initializer ?? []).map((t) => [t.name ?? '', t]));
  return shape.map((layer, i) => {
    const { w, b } = denseParamNames(i);
    return { ...layer, w: tensorFloat32(inits.get(w)!), b: tensorFloat32(inits.get(b)!) };
  });
}

/**
 * Seeded initial layers: weights Glorot-uniform (Keras' default) or He-uniform (for ReLU stacks),
 * biases 0. With `streams`, layer i draws from rng.fork(streams[i]); otherwise all layers draw
 * from `rng` in order.
 */
export function initDense(
  inputs: number,
  spec: readonly { units: number; activation: DenseActivation }[],
  rng: Rng,
  init: 'glorot-uniform' | 'he-uniform' = 'glorot-uniform',
  streams?: readonly string[],
): DenseLayer[] {
  let fanIn = inputs;
  return spec.map((s, i) => {
    const dims = [fanIn, s.units];
    const r = streams ? rng.fork(streams[i]) : rng;
    const layer: DenseLayer = {
      inputs: fanIn,
      outputs: s.units,
      activation: s.activation,
      w: init === 'he-uniform' ? heUniform(dims, r) : glorotUniform(dims, r),
      b: new Float32Array(s.units),
    };
    fanIn = s.units;
    return layer;
  });
}

export interface DenseFitOptions extends Omit<FitOptions, 'onEpoch'> {
  layers: readonly DenseLayer[];
  loss: TrainingLoss;
  optimizer: Optimizer;
  session?: SessionOptions;
  /** Also the loss on `data` (uncorrupted) before and after training. */
  evaluate?: boolean;
  onEpoch?: (report: EpochReport) => void;
}

export interface DenseFit {
  layers: DenseLayer[];
  history: { loss: number[]; validationLoss: number[] };
  epochs: number;
  stoppedEarly: boolean;
  steps: number;
  seconds: number;
  provider: Provider;
  /** With `evaluate`: the loss on the training data before and after training. */
  initialLoss?: number;
  finalLoss?: number;
}

/** Trains a dense stack on onnxruntime (Trainer) and returns the trained layers. */
export async function fitDense(options: DenseFitOptions): Promise<DenseFit> {
  const { model, params } = denseModel(options.layers);
  const trainer = await Trainer.create({ model, params, loss: options.loss, optimizer: options.optimizer, session: options.session });
  try {
    const initialLoss = options.evaluate ? await trainer.evaluate(options.data) : undefined;
    const fit = await trainer.fit(options);
    const finalLoss = options.evaluate ? await trainer.evaluate(options.data) : undefined;
    return {
      layers: denseLayersOf(trainer.model(), options.layers),
      history: fit.history,
      epochs: fit.epochs,
      stoppedEarly: fit.stoppedEarly,
      steps: fit.steps,
      seconds: fit.seconds,
      provider: trainer.provider,
      initialLoss,
      finalLoss,
    };
  } finally {
    await trainer.release();
  }
}

/** The stack in plain JS on n samples (float64 accumulation, float32 results). */
export function denseForward(layers: readonly DenseLayer[], x: ArrayLike<number>, n: number): Float32Array {
  let cur: ArrayLike<number> = x;
  for (const layer of layers) {
    const out = new Float32Array(n * layer.outputs);
    const acc = new Float64Array(layer.outputs);
    for (let j = 0; j < n; j++) {
      acc.set(layer.b);
      for (let i = 0; i < layer.inputs; i++) {
        const v = cur[j * layer.inputs + i];
        if (v === 0) continue;
        const row = i * layer.outputs;
        for (let k = 0; k < layer.outputs; k++) acc[k] += v * layer.w[row + k];
      }
      for (let k = 0; k < layer.outputs; k++) out[j * layer.outputs + k] = activate(layer.activation, acc[k]);
    }
    cur = out;
  }
  return cur as Float32Array;
}

function activate(a: DenseActivation, v: number): number {
  switch (a) {
    case 'relu':
      return v > 0 ? v : 0;
    case 'sigmoid':
      return 1 / (1 + Math.exp(-v));
    case 'tanh':
      return Math.tanh(v);
    default:
      return v;
  }
}

export type { TrainSet };
