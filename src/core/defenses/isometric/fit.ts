/**
 * The isometric head (arXiv:2211.01236, docs/papers.md §4): the dense tail after T fine-tuned with
 * cross-entropy plus the metric-preservation term on the reference set, the head (input → T) kept
 * frozen. Training runs on onnxruntime with the project's trainer (core/train): the training model
 * is the tail's prefix and dense layers with the logits and the last hidden layer z concatenated
 * as one output, the loss 'softmax-ce-isometric' (onnx/autodiff/train-loss.ts) reading the
 * flattened network inputs x beside the labels, Adam, seeded mini-batch order.
 *
 * The fitted stage is an after-tail defense that does not read the tail's logits: it computes new
 * logits from the activation at T through the retrained layers, so the composed model is the
 * frozen head followed by the retrained tail (the old tail still runs, and its output is dropped).
 */
import { UserError } from '../../errors';
import { GraphBuilder, makeModel } from '../../onnx/builder';
import { cutModel, tensorValueInfo } from '../../onnx/cut';
import { encodeModel, type ModelProto, type NodeProto } from '../../onnx/proto';
import { floatTensor } from '../../onnx/tensor-proto';
import { Rng } from '../../random';
import { createSession, runBatched, type SessionOptions } from '../../runtime/session';
import { denseLayersOf, denseParamNames, Trainer, type DenseLayer } from '../../train';
import type { InspectedModel, ReferenceActivations } from '../activations';
import { DEFENSE_IO, type DefenseStage } from '../types';
import { denseTail, type DenseTail } from './tail';

export const ISOMETRIC_DEFAULTS = { weight: 0.1, scale: 10, epochs: 10, batchSize: 64, learningRate: 1e-3 } as const;

export interface IsometricOptions {
  /** λ1. */
  weight?: number;
  /** λ2. */
  scale?: number;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
}

/**
 * What the isometric fit needs beyond the activations at T: the classifier (its tail's weights) and
 * the reference images as the model takes them (x of the metric term). fitDefense passes both in
 * the fit context.
 */
export interface IsometricSources {
  model: InspectedModel;
  inputs: { x: Float32Array; count: number };
}

const TRAIN_INPUT = 'activation';
const TRAIN_OUTPUT = 'logits_and_representation';

/** The tail as an ONNX model on the activation at T: prefix, dense layers; with `representation`, output [logits, z]. */
function headModel(
  tail: DenseTail,
  layers: readonly DenseLayer[],
  dims: number[],
  io: { input: string; output: string },
  representation: number | undefined,
  opset: number,
): ModelProto {
  const g = new GraphBuilder('isometric/');
  const rename = (t: string) => (t === tail.input ? io.input : t);
  const prefix: NodeProto[] = tail.prefix.map((n) => ({ ...n, input: (n.input ?? []).map(rename) }));
  g.nodes.push(...prefix);
  let x = rename(tail.denseInput);
  const inits = [...tail.prefixInitializers];
  let z: string | undefined;
  layers.forEach((layer, i) => {
    const { w, b } = denseParamNames(i);
    inits.push(floatTensor(w, [layer.inputs, layer.outputs], layer.w), floatTensor(b, [layer.outputs], layer.b));
    const pre = g.op('Add', [g.op('MatMul', [x, w]), b]);
    x = layer.activation === 'linear' ? pre : g.op({ relu: 'Relu', tanh: 'Tanh', sigmoid: 'Sigmoid' }[layer.activation], [pre]);
    if (i === representation) z = x;
  });
  const classes = layers[layers.length - 1].outputs;
  let width = classes;
  if (representation !== undefined) {
    // No hidden layer in the tail: the representation is the logits themselves (see params.representation).
    z ??= x;
    width += representation === layers.length - 1 ? classes : layers[representation].outputs;
    g.node('Concat', [x, z], { axis: 1 }, [io.output]);
  } else g.node('Identity', [x], {}, [io.output]);
  const graph = g.graph('isometric_head', [tensorValueInfo(io.input, ['N', ...dims])], [tensorValueInfo(io.output, ['N', width])], inits);
  return makeModel(graph, opset);
}

/** Index of z's layer: the last hidden layer (the one before the logits), or the logits' own when there is no hidden layer. */
export function representationLayer(tail: DenseTail): number {
  return tail.layers.length >= 2 ? tail.layers.length - 2 : tail.layers.length - 1;
}

/**
 * The training model of the isometric head: the tail on the activation at T with output [logits, z]
 * (what the 'softmax-ce-isometric' loss reads), and its trainable initializers (w, b per layer).
 */
export function isometricTrainingModel(tail: DenseTail, dims: number[], opset: number): { model: ModelProto; params: string[]; input: string } {
  const model = headModel(tail, tail.layers, dims, { input: TRAIN_INPUT, output: TRAIN_OUTPUT }, representationLayer(tail), opset);
  return { model, params: tail.layers.flatMap((_, i) => [denseParamNames(i).w, denseParamNames(i).b]), input: TRAIN_INPUT };
}

export async function fitIsometric(
  ref: ReferenceActivations,
  sources: IsometricSources | undefined,
  options: IsometricOptions & {
    layer: string;
    seed: number;
    signal?: AbortSignal;
    log(line: string): void;
    onProgress?(done: number, total: number): void;
    session?: SessionOptions;
  },
): Promise<DefenseStage> {
  if (!sources) {
    throw new UserError(
      'The isometric head needs the classifier and the reference images, not only the activations at the layer.',
      'Fit it through evaluate, run or export (fitDefense passes both).',
    );
  }
  const weight = options.weight ?? ISOMETRIC_DEFAULTS.weight;
  const scale = options.scale ?? ISOMETRIC_DEFAULTS.scale;
  const epochs = options.epochs ?? ISOMETRIC_DEFAULTS.epochs;
  const batchSize = options.batchSize ?? ISOMETRIC_DEFAULTS.batchSize;
  const learningRate = options.learningRate ?? ISOMETRIC_DEFAULTS.learningRate;
  const { loaded, graph } = sources.model;
  const tail = denseTail(cutModel(loaded.model, options.layer, graph.shapes).tail, options.layer);
  const classes = tail.layers[tail.layers.length - 1].outputs;
  if (classes !== ref.numClasses) throw new Error(`the dense tail outputs ${classes} values, the model ${ref.numClasses}`);
  if (sources.inputs.count !== ref.n) throw new Error(`${sources.inputs.count} reference images for ${ref.n} activations`);
  const inputSize = sources.inputs.x.length / ref.n;
  // z: the last hidden layer of the tail, i.e. the output of the layer before the logits.
  const hidden = representationLayer(tail);
  const representation =
    tail.layers.length >= 2
      ? `the last hidden layer of the tail (output of '${tail.sources[hidden]}', ${tail.layers[hidden].outputs} units, ${tail.layers[hidden].activation})`
      : `the logits (the tail after T is one dense layer, '${tail.sources[0]}', so it has no hidden layer)`;
  options.log(
    `Isometric head at '${options.layer}': ${tail.layers.length} dense layer(s) (${tail.layers.map((l) => `${l.inputs}→${l.outputs} ${l.activation}`).join(', ')}), z = ${representation}; ${epochs} epochs, λ1 ${weight}, λ2 ${scale}.`,
  );

  const session = options.session ?? { ep: 'cpu' as const };
  const { model: trainModel, params } = isometricTrainingModel(tail, ref.dims, ref.opset);
  const trainer = await Trainer.create({
    model: trainModel,
    params,
    loss: { kind: 'softmax-ce-isometric', classes, inputSize, weight, scale },
    optimizer: { kind: 'adam' },
    session,
  });
  let layers: DenseLayer[];
  let history: number[];
  let steps: number;
  try {
    const fit = await trainer.fit({
      data: { x: ref.activations, target: ref.labels, aux: sources.inputs.x, n: ref.n },
      epochs,
      batchSize,
      learningRate,
      rng: new Rng(options.seed).fork('isometric-head'),
      signal: options.signal,
      what: 'Training the isometric head',
      onEpoch: (r) => {
        options.log(`  epoch ${r.epoch + 1}/${epochs}: loss ${r.loss.toFixed(4)} (${r.seconds.toFixed(1)} s)`);
        options.onProgress?.(r.epoch + 1, epochs);
      },
    });
    layers = denseLayersOf(trainer.model(), tail.layers);
    history = fit.history.loss;
    steps = fit.steps;
  } finally {
    await trainer.release();
  }

  const io = { input: DEFENSE_IO.activation, output: DEFENSE_IO.scores };
  const model = headModel(tail, layers, ref.dims, io, undefined, ref.opset);
  const accuracy = async (m: ModelProto) => {
    const s = await createSession(encodeModel(m), session);
    try {
      const out = await runBatched(s, { name: io.input, data: ref.activations, count: ref.n, sampleDims: ref.dims }, io.output, 256);
      let correct = 0;
      for (let i = 0; i < ref.n; i++) {
        const row = out.data.subarray(i * classes, (i + 1) * classes);
        if (row.indexOf(Math.max(...row)) === ref.labels[i]) correct++;
      }
      return correct / ref.n;
    } finally {
      await s.release();
    }
  };
  const before = await accuracy(headModel(tail, tail.layers, ref.dims, io, undefined, ref.opset));
  const after = await accuracy(model);
  options.log(`Isometric head: reference accuracy ${(100 * before).toFixed(1)}% before, ${(100 * after).toFixed(1)}% after fine-tuning.`);
  return {
    kind: 'isometric',
    layer: options.layer,
    placement: 'after-tail',
    scores: 'logits',
    model,
    params: {
      stage:
        'after-tail, replacing the tail: ignores the tail\u2019s logits and computes new logits from the activation at T through the retrained dense layers (head frozen)',
      layers: tail.layers.map((l, i) => ({ source: tail.sources[i], inputs: l.inputs, outputs: l.outputs, activation: l.activation })),
      prefixOps: tail.prefix.map((n) => n.opType ?? ''),
      representation,
      weight,
      scale,
      epochs,
      batchSize,
      learningRate,
      optimizer: 'adam (β1 0.9, β2 0.999, ε 1e-8)',
      steps,
      lossHistory: history,
      referenceAccuracy: { before, after },
      seed: options.seed,
      backend: `onnxruntime:${trainer.provider}`,
    },
  };
}
