/**
 * Fitting the dAE: normalisation, denoising training on onnxruntime (core/train), the
 * normalisation folded into the weights, α calibrated on the reference set.
 *
 * Training: on u = (h − μ)/s, μ the per-feature reference mean and s one global scale (the RMS
 * deviation of the reference activations), with Gaussian corruption u + σ·ε, ε ~ N(0, I) (so
 * `sigma` is in units of s), Adam (β1 0.9, β2 0.999, ε 1e-7, as TensorFlow.js) on the mean squared
 * reconstruction error of the clean u, mini-batches in a seeded order. Every step is one
 * onnxruntime run (forward, loss, gradients and the Adam update: onnx/autodiff/train-step.ts).
 * Initial weights (Glorot-uniform, zero biases), shuffling and noise come from the seeded Rng
 * (streams init/encoder, init/decoder, shuffle/<epoch>, noise), so one seed gives the same
 * weights. The normalisation is then folded into the weights, so the exported r is exactly
 * r(h) = W2·σ(W1·h + b1) + b2 on the raw activations h (a per-coordinate rescaling leaves
 * ∂rᵢ/∂hᵢ unchanged).
 */
import * as ort from 'onnxruntime-node';
import { UserError } from '../../errors';
import { encodeModel } from '../../onnx/proto';
import { Rng } from '../../random';
import { createSession, type SessionOptions } from '../../runtime/session';
import { fitDense, glorotUniform, type DenseLayer } from '../../train';
import type { DefenseStage } from '../types';
import { buildDaeModel, buildDaeStatisticsModel, DAE_STATS } from './model';
import { nonNegative, positiveInt, quantile, quantiles, fmt } from './stats';
import { DAE_DEFAULTS, type DaeOptions, type DaeParams, type DaeReference, type DaeWeights } from './types';

/** Adam's ε: TensorFlow.js's default, which trained the dAE before it moved to onnxruntime. */
const ADAM_EPSILON = 1e-7;

export async function fitDae(reference: DaeReference, options: DaeOptions = {}): Promise<DefenseStage> {
  const layer = options.layer ?? reference.layer;
  if (!layer) throw new UserError('fitDae: no insertion point given.', 'Pass `layer` (the tensor T) in the reference activations or the options.');
  const dims = [...reference.dims];
  const d = dims.reduce((a, b) => a * b, 1);
  const n = reference.n;
  if (!(n >= 2) || reference.activations.length !== n * d) {
    throw new UserError(
      `fitDae: ${reference.activations.length} activation values for ${n} samples of [${dims.join(', ')}].`,
      'The dAE needs at least 2 reference samples.',
    );
  }
  const hidden = positiveInt(options.hidden ?? DAE_DEFAULTS.hidden, 'hidden');
  const activation = options.activation ?? DAE_DEFAULTS.activation;
  if (activation !== 'sigmoid' && activation !== 'tanh') throw new UserError(`Unknown dAE activation '${String(activation)}'`, "Use 'sigmoid' or 'tanh'.");
  const sigma = nonNegative(options.sigma ?? DAE_DEFAULTS.sigma, 'sigma');
  const epochs = positiveInt(options.epochs ?? DAE_DEFAULTS.epochs, 'epochs', 0);
  const batchSize = positiveInt(options.batchSize ?? DAE_DEFAULTS.batchSize, 'batchSize');
  const learningRate = nonNegative(options.learningRate ?? DAE_DEFAULTS.learningRate, 'learningRate');
  const beta = nonNegative(options.beta ?? DAE_DEFAULTS.beta, 'beta');
  const calibration = options.calibration ?? { ...DAE_DEFAULTS.calibration };
  if (!(calibration.quantile >= 0 && calibration.quantile <= 1) || !(calibration.confidence > 0 && calibration.confidence < 1)) {
    throw new UserError(`Invalid dAE calibration ${JSON.stringify(calibration)}`, 'quantile in [0, 1], confidence in (0, 1).');
  }
  if (options.alpha !== undefined) nonNegative(options.alpha, 'alpha');
  const seed = options.seed ?? DAE_DEFAULTS.seed;
  const rng = new Rng(seed);
  const log = options.log ?? ((line: string) => console.error(line));
  const session: SessionOptions = options.session ?? { ep: 'cpu' };

  // Normalisation: u = (h − μ) / s.
  const h = reference.activations;
  const { mu, scale, u } = normalise(h, n, d);

  // Glorot-uniform initial weights, zero biases; encoder σ(u·W1 + b1), linear decoder.
  const init = rng.fork('init');
  const layers: DenseLayer[] = [
    { inputs: d, outputs: hidden, activation, w: glorotUniform([d, hidden], init.fork('encoder')), b: new Float32Array(hidden) },
    { inputs: hidden, outputs: d, activation: 'linear', w: glorotUniform([hidden, d], init.fork('decoder')), b: new Float32Array(d) },
  ];
  const fit = await fitDense({
    layers,
    loss: { kind: 'mse' },
    optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: ADAM_EPSILON },
    data: { x: u, n },
    epochs,
    batchSize,
    learningRate,
    rng,
    corrupt: (x, rows, noise) => {
      for (let i = 0; i < x.length; i++) x[i] += sigma * noise.normal();
    },
    evaluate: true,
    signal: options.signal,
    what: 'Fitting the dAE',
    onEpoch: (r) => options.onEpoch?.(r.epoch, r.loss),
    session,
  });
  const [enc, dec] = fit.layers;
  const weights = foldNormalisation(enc, dec, mu, scale, activation, beta);

  // Reference statistics (and α): reconstruction errors and γ on the reference set.
  const stats = await referenceStatistics(weights, h, n, session);
  let alpha = options.alpha;
  const alphaSource = alpha === undefined ? 'calibrated' : 'given';
  if (alpha === undefined) {
    const q = quantile(stats.errors, calibration.quantile);
    alpha = q > 0 ? (d * -Math.log(calibration.confidence)) / q : 1;
  }
  weights.alpha = alpha;
  const confidences = new Float64Array(n);
  for (let j = 0; j < n; j++) confidences[j] = Math.exp((-alpha / d) * stats.errors[j]) * Math.exp(-beta * Math.max(stats.gammas[j], 0));

  const lossHistory = fit.history.loss;
  const params: DaeParams = {
    dims,
    d,
    hidden,
    activation,
    sigma,
    epochs,
    batchSize,
    learningRate,
    alpha,
    alphaSource,
    calibration,
    beta,
    seed,
    referenceCount: n,
    scale,
    lossHistory,
    cleanMse: { initial: fit.initialLoss!, final: fit.finalLoss! },
    reference: {
      reconError: quantiles(stats.errors),
      gamma: { ...quantiles(stats.gammas), fractionPositive: stats.gammas.filter((g) => g > 0).length / n },
      confidence: quantiles(confidences),
    },
    backend: `onnxruntime:${fit.provider}`,
  };
  log(
    `dAE at '${layer}': D=${d}, H=${hidden}, ${epochs} epochs on onnxruntime (${fit.provider}, ${fit.seconds.toFixed(1)} s), denoising loss ${fmt(lossHistory[0])} → ${fmt(lossHistory[lossHistory.length - 1])}, ` +
      `clean MSE ${fmt(params.cleanMse.initial)} → ${fmt(params.cleanMse.final)} (s²), α=${fmt(alpha)} (${alphaSource}), β=${beta}, median reference c=${fmt(params.reference.confidence.median)}.`,
  );
  return {
    kind: 'dae',
    layer,
    placement: 'after-tail',
    scores: 'probabilities',
    model: buildDaeModel(weights, dims, options.numClasses),
    params: params as unknown as Record<string, unknown>,
  };
}

/** u = (h − μ)/s with μ per feature and s the global RMS deviation (float64 sums). */
export function normalise(h: Float32Array, n: number, d: number): { mu: Float64Array; scale: number; u: Float32Array } {
  const mu = new Float64Array(d);
  for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) mu[i] += h[j * d + i];
  for (let i = 0; i < d; i++) mu[i] /= n;
  let ss = 0;
  for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) ss += (h[j * d + i] - mu[i]) ** 2;
  const scale = Math.sqrt(ss / (n * d)) || 1;
  const u = new Float32Array(n * d);
  for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) u[j * d + i] = (h[j * d + i] - mu[i]) / scale;
  return { mu, scale, u };
}

/** The u-space layers as h-space weights: W1/s, b1 − (μ/s)·W1, W2·s, b2·s + μ. */
function foldNormalisation(enc: DenseLayer, dec: DenseLayer, mu: Float64Array, scale: number, activation: DaeWeights['activation'], beta: number): DaeWeights {
  const d = enc.inputs,
    hidden = enc.outputs;
  const encoder = new Float32Array(d * hidden);
  const b1 = new Float32Array(hidden);
  for (let k = 0; k < hidden; k++) {
    let acc = enc.b[k];
    for (let i = 0; i < d; i++) acc -= (mu[i] / scale) * enc.w[i * hidden + k];
    b1[k] = acc;
  }
  for (let i = 0; i < d * hidden; i++) encoder[i] = enc.w[i] / scale;
  const decoder = new Float32Array(hidden * d);
  for (let i = 0; i < hidden * d; i++) decoder[i] = dec.w[i] * scale;
  const b2 = new Float32Array(d);
  for (let i = 0; i < d; i++) b2[i] = dec.b[i] * scale + mu[i];
  return { d, h: hidden, activation, encoder, b1, decoder, b2, alpha: 0, beta };
}

/** ‖r(h) − h‖ and γ(h) for every reference sample (onnxruntime, batched). */
async function referenceStatistics(w: DaeWeights, h: Float32Array, n: number, options: SessionOptions): Promise<{ errors: number[]; gammas: number[] }> {
  const session = await createSession(encodeModel(buildDaeStatisticsModel(w)), options);
  const errors: number[] = [];
  const gammas: number[] = [];
  try {
    for (let start = 0; start < n; start += 512) {
      const rows = Math.min(512, n - start);
      const out = await session.run({ [DAE_STATS.input]: new ort.Tensor('float32', h.subarray(start * w.d, (start + rows) * w.d), [rows, w.d]) }, [
        DAE_STATS.reconError,
        DAE_STATS.gamma,
      ]);
      errors.push(...(out[DAE_STATS.reconError].data as Float32Array));
      gammas.push(...(out[DAE_STATS.gamma].data as Float32Array));
    }
  } finally {
    await session.release();
  }
  return { errors, gammas };
}
