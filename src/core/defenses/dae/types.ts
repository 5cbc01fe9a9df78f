/** The dAE defense's public types, defaults and the names its ONNX model uses. */
import type { SessionOptions } from '../../runtime/session';

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
  /** Adam learning rate (β1 0.9, β2 0.999, ε 1e-7 as TensorFlow.js). Default 1e-3. */
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
  /** Checked before every training batch: the fit rejects with CancelledError. */
  signal?: AbortSignal;
  /** Called after each epoch with the mean denoising loss of that epoch. */
  onEpoch?: (epoch: number, loss: number) => void;
  /** Log lines (the training summary). Default: stderr. */
  log?: (line: string) => void;
  /** Where onnxruntime trains and evaluates the dAE. Default: the CPU, one thread per core. */
  session?: SessionOptions;
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
  /** What trained the dAE: 'onnxruntime:<execution provider>'. */
  backend: string;
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

/** Initializer names in the defense model (read back by `daeWeightsFromStage`). */
export const INIT = {
  encoder: 'dae_encoder',
  b1: 'dae_b1',
  decoder: 'dae_decoder',
  b2: 'dae_b2',
  traceWeights: 'dae_trace_weights',
  ones: 'dae_ones',
} as const;

/** Added inside the square root so that its gradient stays finite at r(h) = h (value change ≤ 1e-10). */
export const NORM_EPS = 1e-20;
