/**
 * The denoising-autoencoder confidence defense (Spigler, "Denoising Autoencoders for
 * Overgeneralization in Neural Networks"; the formulas below are the paper's).
 *
 * A dAE r is trained on the reference activations h ∈ R^D at an insertion point T (T may be the
 * model input itself, the paper's setting). For a new activation h the confidence is
 *
 *   c(h) = exp(−α/D · ‖r(h) − h‖₂) · Γ(h)
 *   Γ(h) = 1 if γ(h) ≤ 0, exp(−β γ(h)) otherwise, i.e. exp(−β · max(γ, 0))
 *   γ(h) = 1/D · Σᵢ (∂rᵢ/∂hᵢ (h) − 1)
 *
 * and the defended classifier outputs ỹ = c(h) · softmax(logits); a sample is rejected when its top
 * scaled probability is below a threshold (the paper reports 0 %, 90 % and 99 %).
 *
 * Architecture (the paper leaves it open): one hidden layer,
 *
 *   r(h) = W2 σ(W1 h + b1) + b2,   W1 ∈ R^{H×D}, W2 ∈ R^{D×H}, σ = sigmoid (or tanh),
 *
 * for which the Jacobian diagonal is exact and closed-form:
 *
 *   ∂rᵢ/∂hᵢ = Σₖ W2[i,k] σ'(aₖ) W1[k,i],  a = W1 h + b1,
 *
 * so Σᵢ ∂rᵢ/∂hᵢ = σ'(a) · m with the constant vector mₖ = Σᵢ W1[k,i] W2[i,k] (the row sums of
 * W1 ⊙ W2ᵀ): γ costs one extra [N,H]×[H,1] MatMul. (A trained dAE contracts: on the demo's
 * reference activations γ ≈ −0.97 at the input (H < D), so Γ = 1 there and the reconstruction term
 * decides; Γ bites for curvature-positive regions, e.g. with H ≥ D.) The whole c(h) is plain ONNX (MatMul, Add, Sub,
 * Mul, Sigmoid/Tanh, Sqrt, Exp, Relu, Softmax, Flatten, Reshape), so the defended model runs on any
 * execution provider and a generic ONNX autodiff differentiates through c.
 *
 * Training (TensorFlow.js, see ./tf): on u = (h − μ)/s, μ the per-feature reference mean and s one
 * global scale (the RMS deviation of the reference activations), with Gaussian corruption
 * u + σ·ε, ε ~ N(0, I) (so `sigma` is in units of s), Adam on the mean squared reconstruction error
 * of the clean u. Initial weights, shuffling and noise come from the seeded Rng, so one seed gives
 * the same weights on the CPU backend. The normalisation is then folded into the weights, so the
 * exported r is exactly the formula above on the raw activations h (a per-coordinate rescaling
 * leaves ∂rᵢ/∂hᵢ unchanged).
 */
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors';
import { GraphBuilder, makeModel } from '../onnx/builder';
import { tensorValueInfo } from '../onnx/cut';
import { decodeModel, encodeModel, type ModelProto } from '../onnx/proto';
import { floatTensor, tensorFloat32 } from '../onnx/tensor-proto';
import { Rng } from '../random';
import { createSession, type SessionOptions } from '../runtime/session';
import { loadTf, type TfRuntime } from './tf';
import { DEFENSE_IO, type DefenseStage } from './types';

// ---------------------------------------------------------------------------------------------
// Public types

/** Reference activations at T: n samples of prod(dims) values each (the batch dimension excluded). */
export interface DaeReference {
  activations: Float32Array;
  n: number;
  dims: readonly number[];
  /** The tensor T they were taken at (else give `options.layer`). */
  layer?: string;
}

export type DaeActivation = 'sigmoid' | 'tanh';

export interface DaeOptions {
  /** The tensor T of the undefended model (default: `reference.layer`). */
  layer?: string;
  /** Hidden units H. Default 256. */
  hidden?: number;
  /** Hidden non-linearity σ. Default 'sigmoid'. */
  activation?: DaeActivation;
  /** Corruption noise std, in units of the reference activations' RMS deviation s. Default 0.25. */
  sigma?: number;
  /** Training epochs over the reference set. Default 20. */
  epochs?: number;
  /** Default 64. */
  batchSize?: number;
  /** Adam learning rate. Default 1e-3. */
  learningRate?: number;
  /**
   * α of the reconstruction term. Default: calibrated on the reference set so that the reference
   * sample at the `calibration.quantile` of the reconstruction errors ‖r(h) − h‖ gets the
   * reconstruction factor exp(−α/D‖r(h)−h‖) = `calibration.confidence` (the paper gives no value;
   * the scale of ‖r(h) − h‖ depends on D, on T and on how well the dAE trained).
   */
  alpha?: number;
  /** β of the curvature term Γ. Default 1 (the paper gives no value). */
  beta?: number;
  /**
   * Used when `alpha` is not given. Default {quantile: 0.95, confidence: 0.99}: 95 % of the reference
   * samples keep a reconstruction factor ≥ 0.99, so that at the 99 % threshold the dAE itself
   * rejects few in-distribution inputs beyond what the classifier's own confidence rejects.
   */
  calibration?: { quantile: number; confidence: number };
  /** Seed of the initial weights, shuffling and corruption noise. Default 0. */
  seed?: number;
  /** Classes of the logits (only used to give the defense model's value infos a fixed size). */
  numClasses?: number;
  signal?: AbortSignal;
  /** Called after each epoch with the mean denoising loss of that epoch. */
  onEpoch?: (epoch: number, loss: number) => void;
  /** Log lines (the TensorFlow.js backend line, training summary). Default: stderr. */
  log?: (line: string) => void;
}

/** The dAE in h-space: r(h) = decoderᵀ·σ(encoderᵀ·h + b1) + b2, with the layouts MatMul uses. */
export interface DaeWeights {
  /** Input size D = prod(dims). */
  d: number;
  /** Hidden size H. */
  h: number;
  activation: DaeActivation;
  /** [D × H] row-major: encoder[i·H + k] = W1[k, i]. */
  encoder: Float32Array;
  /** [H]. */
  b1: Float32Array;
  /** [H × D] row-major: decoder[k·D + i] = W2[i, k]. */
  decoder: Float32Array;
  /** [D]. */
  b2: Float32Array;
  alpha: number;
  beta: number;
}

/** What `fitDae` records in `DefenseStage.params` (JSON-compatible). */
export interface DaeParams {
  dims: number[];
  d: number;
  hidden: number;
  activation: DaeActivation;
  sigma: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  alpha: number;
  alphaSource: 'given' | 'calibrated';
  calibration: { quantile: number; confidence: number };
  beta: number;
  seed: number;
  referenceCount: number;
  /** Global scale s of the reference activations (noise std in h units = sigma · s). */
  scale: number;
  /** Mean denoising loss per epoch (in units of s²; predicting the mean scores 1). */
  lossHistory: number[];
  /** Clean reconstruction MSE (units of s²) on the reference set, before and after training. */
  cleanMse: { initial: number; final: number };
  /** Quantiles of ‖r(h) − h‖, γ(h) and c(h) over the reference set after training. */
  reference: {
    reconError: Quantiles;
    gamma: Quantiles & { fractionPositive: number };
    confidence: Quantiles;
  };
  tfBackend: string;
}

export interface Quantiles {
  min: number;
  p05: number;
  median: number;
  p95: number;
  max: number;
}

export const DAE_DEFAULTS = {
  hidden: 256,
  activation: 'sigmoid' as DaeActivation,
  sigma: 0.25,
  epochs: 20,
  batchSize: 64,
  learningRate: 1e-3,
  beta: 1,
  calibration: { quantile: 0.95, confidence: 0.99 },
  seed: 0,
} as const;

/** Name of the extra diagnostic output of the defense model: c(h), [N]. */
export const DAE_CONFIDENCE_OUTPUT = 'dae_confidence';

/** Initializer names in the defense model (read back by `daeWeightsFromModel`). */
const INIT = {
  encoder: 'dae_encoder',
  b1: 'dae_b1',
  decoder: 'dae_decoder',
  b2: 'dae_b2',
  traceWeights: 'dae_trace_weights',
  ones: 'dae_ones',
} as const;

/** Added inside the square root so that its gradient stays finite at r(h) = h (value change ≤ 1e-10). */
const NORM_EPS = 1e-20;

// ---------------------------------------------------------------------------------------------
// Fitting

export async function fitDae(reference: DaeReference, options: DaeOptions = {}): Promise<DefenseStage> {
  const layer = options.layer ?? reference.layer;
  if (!layer) throw new UserError('fitDae: no insertion point given.', "Pass `layer` (the tensor T) in the reference activations or the options.");
  const dims = [...reference.dims];
  const d = dims.reduce((a, b) => a * b, 1);
  const n = reference.n;
  if (!(n >= 2) || reference.activations.length !== n * d) {
    throw new UserError(`fitDae: ${reference.activations.length} activation values for ${n} samples of [${dims.join(', ')}].`, 'The dAE needs at least 2 reference samples.');
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
  const signal = options.signal;

  // Normalisation: u = (h − μ) / s.
  const mu = new Float64Array(d);
  const h = reference.activations;
  for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) mu[i] += h[j * d + i];
  for (let i = 0; i < d; i++) mu[i] /= n;
  let ss = 0;
  for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) ss += (h[j * d + i] - mu[i]) ** 2;
  const scale = Math.sqrt(ss / (n * d)) || 1;
  const u = new Float32Array(n * d);
  for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) u[j * d + i] = (h[j * d + i] - mu[i]) / scale;

  const runtime = await loadTf(log);
  const tf = runtime.tf;
  // Glorot-uniform initial weights, zero biases.
  const init = rng.fork('init');
  const limit = Math.sqrt(6 / (d + hidden));
  const w1 = tf.variable(tf.tensor2d(init.fork('encoder').uniform(new Float32Array(d * hidden), -limit, limit), [d, hidden]));
  const b1 = tf.variable(tf.zeros([hidden]));
  const w2 = tf.variable(tf.tensor2d(init.fork('decoder').uniform(new Float32Array(hidden * d), -limit, limit), [hidden, d]));
  const b2 = tf.variable(tf.zeros([d]));
  const variables = [w1, b1, w2, b2];
  const act = (t: import('@tensorflow/tfjs').Tensor) => (activation === 'sigmoid' ? tf.sigmoid(t) : tf.tanh(t));
  const reconstruct = (x: import('@tensorflow/tfjs').Tensor2D) => tf.add(tf.matMul(act(tf.add(tf.matMul(x, w1), b1)), w2), b2);
  const cleanMse = async (): Promise<number> => {
    let sum = 0;
    for (let start = 0; start < n; start += 512) {
      const m = Math.min(512, n - start);
      const t = tf.tidy(() => {
        const x = tf.tensor2d(u.subarray(start * d, (start + m) * d), [m, d]);
        return tf.sum(tf.square(tf.sub(reconstruct(x), x)));
      });
      sum += (await t.data())[0];
      t.dispose();
    }
    return sum / (n * d);
  };

  const optimizer = tf.train.adam(learningRate);
  const lossHistory: number[] = [];
  let initialMse = NaN;
  let finalMse = NaN;
  try {
    initialMse = await cleanMse();
    const noise = rng.fork('noise');
    const clean = new Float32Array(batchSize * d);
    const noisy = new Float32Array(batchSize * d);
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = permutation(n, rng.fork(`shuffle/${epoch}`));
      let sum = 0;
      for (let start = 0; start < n; start += batchSize) {
        throwIfAborted(signal);
        const m = Math.min(batchSize, n - start);
        for (let r = 0; r < m; r++) clean.set(u.subarray(order[start + r] * d, (order[start + r] + 1) * d), r * d);
        for (let i = 0; i < m * d; i++) noisy[i] = clean[i] + sigma * noise.normal();
        const cost = tf.tidy(() => {
          const xc = tf.tensor2d(clean.subarray(0, m * d), [m, d]);
          const xn = tf.tensor2d(noisy.subarray(0, m * d), [m, d]);
          return optimizer.minimize(() => tf.mean(tf.square(tf.sub(reconstruct(xn), xc))) as import('@tensorflow/tfjs').Scalar, true, variables) as import('@tensorflow/tfjs').Scalar;
        });
        sum += (await cost.data())[0] * m;
        cost.dispose();
        // Let an AbortSignal (or anything else) through between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      lossHistory.push(sum / n);
      options.onEpoch?.(epoch, sum / n);
    }
    finalMse = await cleanMse();
  } catch (e) {
    optimizer.dispose();
    for (const v of variables) v.dispose();
    throw e;
  }
  const [w1u, b1u, w2u, b2u] = await Promise.all(variables.map(async (v) => Float32Array.from(await v.data())));
  optimizer.dispose();
  for (const v of variables) v.dispose();

  // Fold the normalisation into h-space weights.
  const encoder = new Float32Array(d * hidden);
  const b1h = new Float32Array(hidden);
  for (let k = 0; k < hidden; k++) {
    let acc = b1u[k];
    for (let i = 0; i < d; i++) acc -= (mu[i] / scale) * w1u[i * hidden + k];
    b1h[k] = acc;
  }
  for (let i = 0; i < d * hidden; i++) encoder[i] = w1u[i] / scale;
  const decoder = new Float32Array(hidden * d);
  for (let i = 0; i < hidden * d; i++) decoder[i] = w2u[i] * scale;
  const b2h = new Float32Array(d);
  for (let i = 0; i < d; i++) b2h[i] = b2u[i] * scale + mu[i];

  const weights: DaeWeights = { d, h: hidden, activation, encoder, b1: b1h, decoder, b2: b2h, alpha: 0, beta };
  // Reference statistics (and α): reconstruction errors and γ on the reference set.
  const stats = await referenceStatistics(runtime, weights, h, n);
  let alpha = options.alpha;
  const alphaSource = alpha === undefined ? 'calibrated' : 'given';
  if (alpha === undefined) {
    const q = quantile(stats.errors, calibration.quantile);
    alpha = q > 0 ? (d * -Math.log(calibration.confidence)) / q : 1;
  }
  weights.alpha = alpha;
  const confidences = new Float64Array(n);
  for (let j = 0; j < n; j++) confidences[j] = Math.exp((-alpha / d) * stats.errors[j]) * Math.exp(-beta * Math.max(stats.gammas[j], 0));

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
    cleanMse: { initial: initialMse, final: finalMse },
    reference: {
      reconError: quantiles(stats.errors),
      gamma: { ...quantiles(stats.gammas), fractionPositive: stats.gammas.filter((g) => g > 0).length / n },
      confidence: quantiles(confidences),
    },
    tfBackend: `${runtime.packageName}:${runtime.backend}`,
  };
  log(
    `dAE at '${layer}': D=${d}, H=${hidden}, ${epochs} epochs, denoising loss ${fmt(lossHistory[0])} → ${fmt(lossHistory[lossHistory.length - 1])}, ` +
      `clean MSE ${fmt(initialMse)} → ${fmt(finalMse)} (s²), α=${fmt(alpha)} (${alphaSource}), β=${beta}, median reference c=${fmt(params.reference.confidence.median)}.`,
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

/** ‖r(h) − h‖ and γ(h) for every reference sample (TensorFlow.js, batched). */
async function referenceStatistics(runtime: TfRuntime, w: DaeWeights, h: Float32Array, n: number): Promise<{ errors: number[]; gammas: number[] }> {
  const { tf } = runtime;
  const { d, h: hidden } = w;
  const errors: number[] = [];
  const gammas: number[] = [];
  const m = traceWeights(w);
  const enc = tf.tensor2d(w.encoder, [d, hidden]);
  const dec = tf.tensor2d(w.decoder, [hidden, d]);
  const b1 = tf.tensor1d(w.b1);
  const b2 = tf.tensor1d(w.b2);
  const mt = tf.tensor2d(Float32Array.from(m), [hidden, 1]);
  try {
    for (let start = 0; start < n; start += 512) {
      const rows = Math.min(512, n - start);
      const [e, g] = tf.tidy(() => {
        const x = tf.tensor2d(h.subarray(start * d, (start + rows) * d), [rows, d]);
        const z = w.activation === 'sigmoid' ? tf.sigmoid(tf.add(tf.matMul(x, enc), b1)) : tf.tanh(tf.add(tf.matMul(x, enc), b1));
        const r = tf.add(tf.matMul(z, dec), b2);
        const err = tf.sqrt(tf.sum(tf.square(tf.sub(r, x)), 1));
        const sp = w.activation === 'sigmoid' ? tf.mul(z, tf.sub(1, z)) : tf.sub(1, tf.square(z));
        const gamma = tf.sub(tf.div(tf.reshape(tf.matMul(sp, mt), [rows]), d), 1);
        return [err, gamma];
      });
      errors.push(...(await e.data()));
      gammas.push(...(await g.data()));
      e.dispose();
      g.dispose();
    }
  } finally {
    for (const t of [enc, dec, b1, b2, mt]) t.dispose();
  }
  return { errors, gammas };
}

// ---------------------------------------------------------------------------------------------
// The defense model

/** mₖ = Σᵢ W1[k,i] W2[i,k]: Σᵢ ∂rᵢ/∂hᵢ = Σₖ σ'(aₖ) mₖ. */
export function traceWeights(w: DaeWeights): Float64Array {
  const m = new Float64Array(w.h);
  for (let k = 0; k < w.h; k++) {
    let acc = 0;
    for (let i = 0; i < w.d; i++) acc += w.encoder[i * w.h + k] * w.decoder[k * w.d + i];
    m[k] = acc;
  }
  return m;
}

/**
 * The standalone defense model: inputs DEFENSE_IO.activation [N, ...dims] and DEFENSE_IO.logits
 * [N, C]; outputs DEFENSE_IO.scores = c(h) · softmax(logits) [N, C] and `dae_confidence` = c(h) [N].
 * Opset 13; every op is in the default domain and keeps its semantics in later opsets (the sums
 * are MatMuls with constant vectors, not ReduceSum, whose signature changed in opset 13).
 */
export function buildDaeModel(w: DaeWeights, dims: readonly number[], numClasses?: number): ModelProto {
  const { d, h: hidden } = w;
  if (dims.reduce((a, b) => a * b, 1) !== d) throw new RangeError(`buildDaeModel: dims [${dims.join(', ')}] do not hold ${d} values`);
  const b = new GraphBuilder('dae_');
  const init = (name: string, shape: number[], values: ArrayLike<number>): string => {
    b.initializers.push(floatTensor(name, shape, values));
    return name;
  };
  const enc = init(INIT.encoder, [d, hidden], w.encoder);
  const b1 = init(INIT.b1, [hidden], w.b1);
  const dec = init(INIT.decoder, [hidden, d], w.decoder);
  const b2 = init(INIT.b2, [d], w.b2);
  const mt = init(INIT.traceWeights, [hidden, 1], traceWeights(w));
  const ones = init(INIT.ones, [d, 1], new Float32Array(d).fill(1));

  const x = b.op('Flatten', [DEFENSE_IO.activation], { axis: 1 }); // [N, D]
  const a = b.op('Add', [b.op('MatMul', [x, enc]), b1]); // [N, H]
  const z = b.op(w.activation === 'sigmoid' ? 'Sigmoid' : 'Tanh', [a]);
  const r = b.op('Add', [b.op('MatMul', [z, dec]), b2]); // [N, D]
  const e = b.op('Sub', [r, x]);
  const sq = b.op('MatMul', [b.op('Mul', [e, e]), ones]); // [N, 1] = ‖r − h‖²
  const norm = b.op('Sqrt', [b.op('Add', [sq, b.scalar(NORM_EPS, 'eps')])]);
  const recon = b.op('Exp', [b.op('Mul', [norm, b.scalar(-w.alpha / d, 'neg_alpha_over_d')])]);
  // σ'(a): sigmoid' = z(1 − z), tanh' = 1 − z².
  const one = b.scalar(1, 'one');
  const sp = w.activation === 'sigmoid' ? b.op('Mul', [z, b.op('Sub', [one, z])]) : b.op('Sub', [one, b.op('Mul', [z, z])]);
  const trace = b.op('MatMul', [sp, mt]); // [N, 1] = Σᵢ ∂rᵢ/∂hᵢ
  const gamma = b.op('Sub', [b.op('Mul', [trace, b.scalar(1 / d, 'inv_d')]), one]);
  const curvature = b.op('Exp', [b.op('Mul', [b.op('Relu', [gamma]), b.scalar(-w.beta, 'neg_beta')])]);
  const c = b.op('Mul', [recon, curvature]); // [N, 1]
  const p = b.op('Softmax', [DEFENSE_IO.logits], { axis: 1 });
  b.node('Mul', [p, c], {}, [DEFENSE_IO.scores]);
  b.node('Reshape', [c, b.int64Const('flat', [-1])], {}, [DAE_CONFIDENCE_OUTPUT]);

  const classes = numClasses ?? 'C';
  const graph = b.graph(
    'dae_confidence',
    [tensorValueInfo(DEFENSE_IO.activation, ['N', ...dims]), tensorValueInfo(DEFENSE_IO.logits, ['N', classes])],
    [tensorValueInfo(DEFENSE_IO.scores, ['N', classes]), tensorValueInfo(DAE_CONFIDENCE_OUTPUT, ['N'])],
  );
  return makeModel(graph, 13);
}

/** The dAE weights (and α, β) back from a defense model built by `buildDaeModel`. */
export function daeWeightsFromStage(stage: DefenseStage): DaeWeights {
  const params = stage.params as unknown as DaeParams;
  const inits = new Map((stage.model.graph?.initializer ?? []).map((t) => [t.name ?? '', t]));
  const get = (name: string): Float32Array => {
    const t = inits.get(name);
    if (!t) throw new UserError(`The dAE defense model has no initializer '${name}'.`, 'Refit the defense.');
    return tensorFloat32(t);
  };
  const encoder = get(INIT.encoder);
  const d = params.d;
  const hidden = encoder.length / d;
  const activation: DaeActivation = params.activation ?? ((stage.model.graph?.node ?? []).some((n) => n.opType === 'Tanh') ? 'tanh' : 'sigmoid');
  return { d, h: hidden, activation, encoder, b1: get(INIT.b1), decoder: get(INIT.decoder), b2: get(INIT.b2), alpha: params.alpha, beta: params.beta };
}

// ---------------------------------------------------------------------------------------------
// Plain-JS reference computation (float64): for tests, diagnostics and gradient checks

export interface DaeEvaluation {
  /** c(h), per sample. */
  confidence: Float64Array;
  /** ‖r(h) − h‖₂. */
  reconError: Float64Array;
  /** γ(h). */
  gamma: Float64Array;
  /** Γ(h). */
  curvature: Float64Array;
}

function hiddenLayer(w: DaeWeights, x: ArrayLike<number>, offset: number): { z: Float64Array; sp: Float64Array; spp: Float64Array } {
  const { d, h: hidden } = w;
  const a = Float64Array.from(w.b1);
  for (let i = 0; i < d; i++) {
    const xi = x[offset + i];
    if (xi === 0) continue;
    const row = i * hidden;
    for (let k = 0; k < hidden; k++) a[k] += xi * w.encoder[row + k];
  }
  const z = new Float64Array(hidden);
  const sp = new Float64Array(hidden);
  const spp = new Float64Array(hidden);
  for (let k = 0; k < hidden; k++) {
    if (w.activation === 'sigmoid') {
      const s = 1 / (1 + Math.exp(-a[k]));
      z[k] = s;
      sp[k] = s * (1 - s);
      spp[k] = sp[k] * (1 - 2 * s);
    } else {
      const t = Math.tanh(a[k]);
      z[k] = t;
      sp[k] = 1 - t * t;
      spp[k] = -2 * t * sp[k];
    }
  }
  return { z, sp, spp };
}

/** r(h) for one sample at `offset` of `x`. */
export function daeReconstruct(w: DaeWeights, x: ArrayLike<number>, offset = 0): Float64Array {
  const { d, h: hidden } = w;
  const { z } = hiddenLayer(w, x, offset);
  const r = Float64Array.from(w.b2);
  for (let k = 0; k < hidden; k++) {
    const zk = z[k];
    const row = k * d;
    for (let i = 0; i < d; i++) r[i] += zk * w.decoder[row + i];
  }
  return r;
}

/** The closed-form Jacobian diagonal ∂rᵢ/∂hᵢ = Σₖ W2[i,k] σ'(aₖ) W1[k,i] for one sample. */
export function daeJacobianDiagonal(w: DaeWeights, x: ArrayLike<number>, offset = 0): Float64Array {
  const { d, h: hidden } = w;
  const { sp } = hiddenLayer(w, x, offset);
  const diag = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let acc = 0;
    for (let k = 0; k < hidden; k++) acc += w.decoder[k * d + i] * sp[k] * w.encoder[i * hidden + k];
    diag[i] = acc;
  }
  return diag;
}

/** c(h), ‖r(h) − h‖, γ(h) and Γ(h) for n samples, straight from the formulas (float64). */
export function daeEvaluate(w: DaeWeights, x: ArrayLike<number>, n: number): DaeEvaluation {
  const { d } = w;
  const out: DaeEvaluation = { confidence: new Float64Array(n), reconError: new Float64Array(n), gamma: new Float64Array(n), curvature: new Float64Array(n) };
  for (let j = 0; j < n; j++) {
    const r = daeReconstruct(w, x, j * d);
    let ss = 0;
    for (let i = 0; i < d; i++) ss += (r[i] - x[j * d + i]) ** 2;
    const diag = daeJacobianDiagonal(w, x, j * d);
    let g = 0;
    for (let i = 0; i < d; i++) g += diag[i] - 1;
    g /= d;
    const err = Math.sqrt(ss);
    const curvature = g <= 0 ? 1 : Math.exp(-w.beta * g);
    out.reconError[j] = err;
    out.gamma[j] = g;
    out.curvature[j] = curvature;
    out.confidence[j] = Math.exp((-w.alpha / d) * err) * curvature;
  }
  return out;
}

/**
 * ∇ₕ log c(h) for n samples (float64), in closed form:
 *   ∇‖e‖ = (Jᵀe − e)/‖e‖ with e = r(h) − h, Jᵀe = W1ᵀ(σ'(a) ⊙ W2ᵀe);
 *   ∇γ = W1ᵀ(σ''(a) ⊙ m)/D;  ∇ log c = −α/D ∇‖e‖ − β [γ > 0] ∇γ.
 * With T = the model input this is the dAE part of the gradient of −log(c·softmax_t) (negated).
 */
export function daeLogConfidenceGradient(w: DaeWeights, x: ArrayLike<number>, n: number): Float64Array {
  const { d, h: hidden } = w;
  const m = traceWeights(w);
  const grad = new Float64Array(n * d);
  for (let j = 0; j < n; j++) {
    const off = j * d;
    const { z, sp, spp } = hiddenLayer(w, x, off);
    const r = Float64Array.from(w.b2);
    for (let k = 0; k < hidden; k++) for (let i = 0; i < d; i++) r[i] += z[k] * w.decoder[k * d + i];
    const e = new Float64Array(d);
    let ss = 0;
    for (let i = 0; i < d; i++) {
      e[i] = r[i] - x[off + i];
      ss += e[i] * e[i];
    }
    const norm = Math.sqrt(ss + NORM_EPS);
    let trace = 0;
    for (let k = 0; k < hidden; k++) trace += sp[k] * m[k];
    const gamma = trace / d - 1;
    // Back-propagated hidden cotangent: δₖ = −α/D/‖e‖ · σ'(aₖ)(W2ᵀe)ₖ − β[γ>0]/D · σ''(aₖ) mₖ.
    const delta = new Float64Array(hidden);
    for (let k = 0; k < hidden; k++) {
      let wte = 0;
      for (let i = 0; i < d; i++) wte += w.decoder[k * d + i] * e[i];
      delta[k] = ((-w.alpha / d) * sp[k] * wte) / norm - (gamma > 0 ? (w.beta / d) * spp[k] * m[k] : 0);
    }
    for (let i = 0; i < d; i++) {
      let acc = ((w.alpha / d) * e[i]) / norm; // −α/D · (−e/‖e‖)
      for (let k = 0; k < hidden; k++) acc += w.encoder[i * hidden + k] * delta[k];
      grad[off + i] = acc;
    }
  }
  return grad;
}

// ---------------------------------------------------------------------------------------------
// Running the defense model, acceptance and metrics

/** Runs a dAE defense model on (activations, logits) with onnxruntime: scaled scores and c. */
export async function runDaeStage(
  stage: DefenseStage,
  activations: Float32Array,
  logits: Float32Array,
  n: number,
  options: SessionOptions & { batchSize?: number } = { ep: 'cpu' },
): Promise<{ scores: Float32Array; confidence: Float32Array }> {
  const params = stage.params as unknown as DaeParams;
  const dims = params.dims;
  const d = params.d;
  const classes = logits.length / n;
  const session = await createSession(encodeModel(stage.model), options);
  const scores = new Float32Array(n * classes);
  const confidence = new Float32Array(n);
  const batch = options.batchSize ?? 256;
  try {
    for (let start = 0; start < n; start += batch) {
      const m = Math.min(batch, n - start);
      const out = await session.run(
        {
          [DEFENSE_IO.activation]: new ort.Tensor('float32', activations.subarray(start * d, (start + m) * d), [m, ...dims]),
          [DEFENSE_IO.logits]: new ort.Tensor('float32', logits.subarray(start * classes, (start + m) * classes), [m, classes]),
        },
        [DEFENSE_IO.scores, DAE_CONFIDENCE_OUTPUT],
      );
      scores.set(out[DEFENSE_IO.scores].data as Float32Array, start * classes);
      confidence.set(out[DAE_CONFIDENCE_OUTPUT].data as Float32Array, start);
    }
  } finally {
    await session.release();
  }
  return { scores, confidence };
}

/** 1 where the top scaled probability reaches `threshold` (the sample is accepted), else 0. */
export function daeAcceptance(scores: Float32Array, threshold: number, numClasses: number): Uint8Array {
  const n = scores.length / numClasses;
  const out = new Uint8Array(n);
  for (let j = 0; j < n; j++) {
    let best = -Infinity;
    for (let c = 0; c < numClasses; c++) best = Math.max(best, scores[j * numClasses + c]);
    out[j] = best >= threshold ? 1 : 0;
  }
  return out;
}

export type { ThresholdRow } from '../../protocol/run-result';
import type { ThresholdRow } from '../../protocol/run-result';

/** Per threshold: accuracy among accepted samples, rejection rate and accuracy over all samples. */
export function thresholdTable(scores: Float32Array, labels: ArrayLike<number>, thresholds: readonly number[]): ThresholdRow[] {
  const n = labels.length;
  if (n === 0 || scores.length % n !== 0) throw new RangeError(`thresholdTable: ${scores.length} scores for ${n} labels`);
  const classes = scores.length / n;
  const top = new Float64Array(n);
  const correct = new Uint8Array(n);
  for (let j = 0; j < n; j++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[j * classes + c] > scores[j * classes + best]) best = c;
    top[j] = scores[j * classes + best];
    correct[j] = best === labels[j] ? 1 : 0;
  }
  return thresholds.map((threshold) => {
    let accepted = 0;
    let good = 0;
    for (let j = 0; j < n; j++) {
      if (top[j] >= threshold) {
        accepted++;
        good += correct[j];
      }
    }
    return { threshold, acceptedAccuracy: accepted ? good / accepted : null, rejectionRate: (n - accepted) / n, accuracyOverAll: good / n, accepted, total: n };
  });
}

// ---------------------------------------------------------------------------------------------
// Serialisation: one ONNX file holds everything (weights as initializers, params as metadata)

const METADATA_KEY = 'robustness-lab.defense';

export function serializeDae(stage: DefenseStage): Uint8Array {
  const meta = JSON.stringify({ kind: stage.kind, layer: stage.layer, placement: stage.placement, scores: stage.scores, params: stage.params });
  const others = (stage.model.metadataProps ?? []).filter((p) => p.key !== METADATA_KEY);
  return encodeModel({ ...stage.model, metadataProps: [...others, { key: METADATA_KEY, value: meta }] });
}

export function deserializeDae(bytes: Uint8Array): DefenseStage {
  const model = decodeModel(bytes);
  const entry = (model.metadataProps ?? []).find((p) => p.key === METADATA_KEY);
  if (!entry?.value) throw new UserError('This ONNX file is not a saved dAE defense (no defense metadata).', 'Refit the defense.');
  const meta = JSON.parse(entry.value) as Omit<DefenseStage, 'model'>;
  if (meta.kind !== 'dae') throw new UserError(`This saved defense is a '${meta.kind}' defense, not a dAE.`);
  return { ...meta, model: { ...model, metadataProps: (model.metadataProps ?? []).filter((p) => p.key !== METADATA_KEY) } };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new DOMException('Fitting the dAE was cancelled.', 'AbortError');
}

function positiveInt(v: number, name: string, min = 1): number {
  if (!Number.isInteger(v) || v < min) throw new UserError(`Invalid dAE ${name} ${v}`, `${name} must be a whole number ≥ ${min}.`);
  return v;
}

function nonNegative(v: number, name: string): number {
  if (!Number.isFinite(v) || v < 0) throw new UserError(`Invalid dAE ${name} ${v}`, `${name} must be a finite number ≥ 0.`);
  return v;
}

function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** Linear-interpolated quantile of unsorted values. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const s = Array.from(values).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function quantiles(values: ArrayLike<number>): Quantiles {
  return { min: quantile(values, 0), p05: quantile(values, 0.05), median: quantile(values, 0.5), p95: quantile(values, 0.95), max: quantile(values, 1) };
}

function fmt(v: number): string {
  return Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : String(v);
}
