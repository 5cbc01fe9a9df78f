/**
 * Training on the reference set, on onnxruntime (core/train), with Adam (β1 0.9, β2 0.999, ε 1e-7,
 * as TensorFlow.js) and seeded mini-batch orders:
 *
 * - The retrieval paper head: dense layers (ReLU) on the standardised leave-one-out features
 *   [h̄; ȳ] of the reference set, softmax cross-entropy on the reference labels. Initial weights
 *   He-uniform, biases 0, drawn in layer order from rng('retrieval-paper-head').
 * - The learned attention (β_n = s·hᵀ U h_n, U D × D in the activation space as in the paper,
 *   initialised at I): one ONNX model per sample row [h; h_1 … h_N; y_1 … y_N] (the leave-one-out
 *   neighbours, `leaveOneOutSamples`) that computes the attention in the graph, trained with the
 *   fused training step. With the paper head, U and the dense layers train jointly on the head's
 *   cross-entropy (the standardisation stays the one of the U = I features, the initial layers the
 *   ones the identity-attention head starts from). With the tail head (the rest of the network is
 *   not available to the fit) U trains on the attention's own label estimate: the cross-entropy
 *   of ȳ, −log ȳ_y (neighbourhood components analysis), which moves the weight onto neighbours of
 *   the sample's class.
 */
import { UserError } from '../../errors';
import { GraphBuilder, makeModel } from '../../onnx/builder';
import { tensorValueInfo } from '../../onnx/cut';
import type { ModelProto } from '../../onnx/proto';
import { Rng } from '../../random';
import type { SessionOptions } from '../../runtime/session';
import { DENSE_IO, Trainer, denseForward, denseParamNames, fitDense, initDense, type DenseLayer } from '../../train';
import { floatTensor } from '../../onnx/tensor-proto';
import { databaseFeatures, leaveOneOutFeatures, leaveOneOutSamples, retrievalAttend } from './attention';
import { RETRIEVAL_TENSORS, type AttentionTraining, type PaperHeadTraining, type RetrievalIndex } from './types';

export interface TrainedHead {
  /** Standardisation of the features: (f − mean)·invStd. */
  mean: Float32Array;
  invStd: Float32Array;
  layers: DenseLayer[];
  /** Mean training loss of the last epoch. */
  loss: number;
  /** Accuracy of the trained head on its training features. */
  accuracy: number;
  /** What trained it: 'onnxruntime:<execution provider>'. */
  backend: string;
}

interface TrainHooks {
  onEpoch?: (epoch: number, loss: number) => void;
  session?: SessionOptions;
  signal?: AbortSignal;
}

/** Standardisation statistics of n rows of F features: mean and 1/std (1 where std ≤ 1e-6). */
export function standardisation(raw: Float32Array, n: number): { mean: Float32Array; invStd: Float32Array } {
  const F = raw.length / n;
  const mean = new Float64Array(F);
  const sq = new Float64Array(F);
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) mean[j] += raw[i * F + j];
  for (let j = 0; j < F; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) sq[j] += (raw[i * F + j] - mean[j]) ** 2;
  const invStd = Float32Array.from(sq, (s) => {
    const sd = Math.sqrt(s / n);
    return sd > 1e-6 ? 1 / sd : 1;
  });
  return { mean: Float32Array.from(mean), invStd };
}

function standardise(raw: Float32Array, n: number, mean: Float32Array, invStd: Float32Array): Float32Array {
  const F = mean.length;
  const x = new Float32Array(n * F);
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) x[i * F + j] = (raw[i * F + j] - mean[j]) * invStd[j];
  return x;
}

function initialHead(F: number, C: number, hidden: readonly number[], seed: number): { rng: Rng; layers: DenseLayer[] } {
  const rng = new Rng(seed).fork('retrieval-paper-head');
  const layers = initDense(
    F,
    [...hidden.map((units) => ({ units, activation: 'relu' as const })), { units: C, activation: 'linear' as const }],
    rng,
    'he-uniform',
  );
  return { rng, layers };
}

/** Accuracy of the head (JS forward) on the standardised leave-one-out features of the index (its attention). */
export function headAccuracy(
  index: RetrievalIndex,
  head: Pick<TrainedHead, 'mean' | 'invStd' | 'layers'>,
  features: Float32Array,
  labels: ArrayLike<number>,
  n: number,
): number {
  const C = index.numClasses;
  const logits = denseForward(head.layers, standardise(features, n, head.mean, head.invStd), n);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (logits[i * C + c] > logits[i * C + best]) best = c;
    if (best === labels[i]) correct++;
  }
  return correct / n;
}

export async function trainPaperHead(
  index: RetrievalIndex,
  training: Required<PaperHeadTraining>,
  seed: number,
  options: TrainHooks = {},
): Promise<TrainedHead> {
  const n = index.n;
  const C = index.numClasses;
  const raw = leaveOneOutFeatures(index, training.search);
  const F = raw.length / n;
  const { mean, invStd } = standardisation(raw, n);
  const x = standardise(raw, n, mean, invStd);
  const { rng, layers } = initialHead(F, C, training.hidden, seed);
  const fit = await fitDense({
    layers,
    loss: { kind: 'softmax-ce' },
    optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    data: { x, target: index.labels, n },
    epochs: training.epochs,
    batchSize: training.batchSize,
    learningRate: training.learningRate,
    rng,
    signal: options.signal,
    what: 'Training the retrieval paper head',
    onEpoch: (r) => options.onEpoch?.(r.epoch, r.loss),
    session: options.session ?? { ep: 'cpu' },
  });
  const loss = fit.history.loss[fit.history.loss.length - 1] ?? NaN;
  const head = { mean, invStd, layers: fit.layers };
  return { ...head, loss, accuracy: headAccuracy(index, head, raw, index.labels, n), backend: `onnxruntime:${fit.provider}` };
}

/** Shape of the learned-attention training model. */
export interface AttentionModelSpec {
  /** D, N, C. */
  size: number;
  neighbours: number;
  numClasses: number;
  /** The attention scale s. */
  scale: number;
  /** U [D, D] row-major. */
  U: Float32Array;
  /** The paper head (standardisation and dense layers); absent: the tail head's objective, output log(ȳ + 1e-12). */
  head?: Pick<TrainedHead, 'mean' | 'invStd' | 'layers'>;
}

/** ε inside the tail objective's log ȳ. */
export const YBAR_LOG_EPS = 1e-12;

/**
 * The training model of the learned attention: input 'x' [B, D + N·D + N·C] (a sample row of
 * `leaveOneOutSamples`), output 'y' [B, C] (the head's logits, or log(ȳ + ε)); trainable
 * initializers U and the dense layers' weights and biases, in that order.
 */
export function attentionTrainingModel(spec: AttentionModelSpec): { model: ModelProto; params: string[] } {
  const D = spec.size;
  const N = spec.neighbours;
  const C = spec.numClasses;
  if (spec.U.length !== D * D) throw new RangeError(`attentionTrainingModel: U has ${spec.U.length} values, D² = ${D * D}`);
  const g = new GraphBuilder('attention_train/');
  const x = DENSE_IO.input;
  const part = (start: number, end: number, shape: number[]) =>
    g.op('Reshape', [
      g.op('Slice', [x, g.int64Const('starts', [start]), g.int64Const('ends', [end]), g.int64Const('axes', [1])]),
      g.int64Const('shape', shape),
    ]);
  const h = part(0, D, [-1, 1, D]);
  const hn = part(D, D + N * D, [-1, N, D]);
  const yn = part(D + N * D, D + N * D + N * C, [-1, N, C]);
  const U = RETRIEVAL_TENSORS.attentionMatrix;
  const beta = g.op('Mul', [g.op('MatMul', [g.op('MatMul', [h, U]), g.op('Transpose', [hn], { perm: [0, 2, 1] })]), g.scalar(spec.scale, 'scale')]);
  const alpha = g.op('Softmax', [beta], { axis: -1 }); // [B, 1, N]
  const hbar = g.op('Reshape', [g.op('MatMul', [alpha, hn]), g.int64Const('shape', [-1, D])]);
  const ybar = g.op('Reshape', [g.op('MatMul', [alpha, yn]), g.int64Const('shape', [-1, C])]);
  const params: string[] = [U];
  const inits: { name: string; dims: number[]; values: Float32Array }[] = [{ name: U, dims: [D, D], values: spec.U }];
  if (!spec.head) {
    g.node('Log', [g.op('Add', [ybar, g.scalar(YBAR_LOG_EPS, 'eps')])], {}, [DENSE_IO.output]);
  } else {
    const { mean, invStd, layers } = spec.head;
    let f = g.op('Mul', [
      g.op('Sub', [g.op('Concat', [hbar, ybar], { axis: 1 }), g.floatConst('feature_mean', [mean.length], mean)]),
      g.floatConst('feature_inv_std', [invStd.length], invStd),
    ]);
    layers.forEach((layer, i) => {
      const names = denseParamNames(i);
      inits.push({ name: names.w, dims: [layer.inputs, layer.outputs], values: layer.w }, { name: names.b, dims: [layer.outputs], values: layer.b });
      params.push(names.w, names.b);
      const last = i === layers.length - 1;
      const pre = g.op('Add', [g.op('MatMul', [f, names.w]), names.b]);
      if (last) g.node('Identity', [pre], {}, [DENSE_IO.output]);
      else f = g.op('Relu', [pre]);
    });
  }
  const graph = g.graph(
    'retrieval_attention_train',
    [tensorValueInfo(x, ['N', D + N * D + N * C])],
    [tensorValueInfo(DENSE_IO.output, ['N', C])],
    inits.map((t) => floatTensor(t.name, t.dims, t.values)),
  );
  return { model: makeModel(graph, 13), params };
}

export interface LearnedAttention {
  /** U [D, D]. */
  U: Float32Array;
  /** The jointly trained paper head (with the paper head). */
  head?: TrainedHead;
  /** Mean training loss of the last epoch. */
  loss: number;
  /** Accuracy on the training samples: the head's, or argmax ȳ's (tail). */
  accuracy: number;
  backend: string;
  /** The leave-one-out neighbours the training used ([n, N]). */
  neighbours: Int32Array;
}

/**
 * Trains U (and, given `paper`, the paper head's dense layers) on the reference set with
 * leave-one-out retrieval; `search` is how the neighbours are found.
 */
export async function trainLearnedAttention(
  index: RetrievalIndex,
  training: Required<AttentionTraining> & { search: 'exact' | 'lsh' },
  seed: number,
  paper: { hidden: readonly number[] } | undefined,
  options: TrainHooks = {},
): Promise<LearnedAttention> {
  const n = index.n;
  const D = index.size;
  const C = index.numClasses;
  const samples = leaveOneOutSamples(index, training.search);
  let head: Pick<TrainedHead, 'mean' | 'invStd' | 'layers'> | undefined;
  let rng = new Rng(seed).fork('retrieval-attention');
  if (paper) {
    const raw = leaveOneOutFeatures({ ...index, attention: undefined }, training.search);
    const stats = standardisation(raw, n);
    const init = initialHead(raw.length / n, C, paper.hidden, seed);
    head = { ...stats, layers: init.layers };
    rng = init.rng;
  }
  const U = new Float32Array(D * D);
  for (let j = 0; j < D; j++) U[j * D + j] = 1;
  const { model, params } = attentionTrainingModel({ size: D, neighbours: index.neighbours, numClasses: C, scale: index.scale, U, head });
  const trainer = await Trainer.create({
    model,
    params,
    loss: { kind: 'softmax-ce' },
    optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    session: options.session ?? { ep: 'cpu' },
  });
  try {
    const fit = await trainer.fit({
      data: { x: samples.x, target: index.labels, n },
      epochs: training.epochs,
      batchSize: training.batchSize,
      learningRate: training.learningRate,
      rng,
      signal: options.signal,
      what: 'Training the retrieval attention',
      onEpoch: (r) => options.onEpoch?.(r.epoch, r.loss),
    });
    const values = trainer.parameters();
    const learnedU = Float32Array.from(values.get(RETRIEVAL_TENSORS.attentionMatrix)!);
    const loss = fit.history.loss[fit.history.loss.length - 1] ?? NaN;
    const backend = `onnxruntime:${trainer.provider}`;
    const trainedIndex = { ...index, attention: learnedU };
    if (head) {
      const layers = head.layers.map((layer, i) => {
        const names = denseParamNames(i);
        return { ...layer, w: Float32Array.from(values.get(names.w)!), b: Float32Array.from(values.get(names.b)!) };
      });
      const trained = { ...head, layers };
      const features = databaseFeatures(trainedIndex, samples.neighbours);
      const accuracy = headAccuracy(trainedIndex, trained, features, index.labels, n);
      return { U: learnedU, head: { ...trained, loss, accuracy, backend }, loss, accuracy, backend, neighbours: samples.neighbours };
    }
    return { U: learnedU, loss, accuracy: ybarAccuracy(trainedIndex, samples.neighbours), backend, neighbours: samples.neighbours };
  } finally {
    await trainer.release();
  }
}

/** Accuracy of argmax ȳ over the database rows with the given neighbours. */
function ybarAccuracy(index: RetrievalIndex, neighbours: Int32Array): number {
  const { ybar } = retrievalAttend(index, index.database, index.n, neighbours);
  const C = index.numClasses;
  let correct = 0;
  for (let i = 0; i < index.n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (ybar[i * C + c] > ybar[i * C + best]) best = c;
    if (best === index.labels[i]) correct++;
  }
  return correct / index.n;
}

export function checkLearnedAttention(D: number, max: number): void {
  if (D > max)
    throw new UserError(
      `Learned retrieval attention: U would be ${D} × ${D} values at this layer (D = ${D}), more than the ${max} × ${max} allowed.`,
      `Use --attention identity here, or insert the retrieval at a layer with at most ${max} values per sample.`,
    );
}
