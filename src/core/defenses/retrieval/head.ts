/**
 * The retrieval paper head: dense layers (ReLU) on the standardised leave-one-out features
 * [h̄; ȳ] of the reference set, trained on onnxruntime (core/train) with softmax cross-entropy on
 * the reference labels and Adam (β1 0.9, β2 0.999, ε 1e-7, as TensorFlow.js). Initial weights
 * He-uniform, biases 0, drawn in layer order from rng('retrieval-paper-head'); mini-batches in a
 * seeded order per epoch.
 */
import { Rng } from '../../random';
import type { SessionOptions } from '../../runtime/session';
import { denseForward, fitDense, initDense, type DenseLayer } from '../../train';
import { leaveOneOutFeatures } from './attention';
import type { PaperHeadTraining, RetrievalIndex } from './types';

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

export async function trainPaperHead(
  index: RetrievalIndex,
  training: Required<PaperHeadTraining>,
  seed: number,
  options: { onEpoch?: (epoch: number, loss: number) => void; session?: SessionOptions; signal?: AbortSignal } = {},
): Promise<TrainedHead> {
  const n = index.n;
  const C = index.numClasses;
  const raw = leaveOneOutFeatures(index, training.search);
  const F = raw.length / n;
  // Standardisation.
  const mean = new Float64Array(F);
  const sq = new Float64Array(F);
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) mean[j] += raw[i * F + j];
  for (let j = 0; j < F; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) sq[j] += (raw[i * F + j] - mean[j]) ** 2;
  const invStd = Float32Array.from(sq, (s) => {
    const sd = Math.sqrt(s / n);
    return sd > 1e-6 ? 1 / sd : 1;
  });
  const x = new Float32Array(n * F);
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) x[i * F + j] = (raw[i * F + j] - mean[j]) * invStd[j];

  const rng = new Rng(seed).fork('retrieval-paper-head');
  const layers = initDense(
    F,
    [...training.hidden.map((units) => ({ units, activation: 'relu' as const })), { units: C, activation: 'linear' as const }],
    rng,
    'he-uniform',
  );
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
  const logits = denseForward(fit.layers, x, n);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (logits[i * C + c] > logits[i * C + best]) best = c;
    if (best === index.labels[i]) correct++;
  }
  const loss = fit.history.loss[fit.history.loss.length - 1] ?? NaN;
  return { mean: Float32Array.from(mean), invStd, layers: fit.layers, loss, accuracy: correct / n, backend: `onnxruntime:${fit.provider}` };
}
