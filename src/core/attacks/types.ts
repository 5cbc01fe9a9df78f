/** What an attack sees of a model: a batched classifier with logits and, if differentiable, input gradients. */

/** The losses the generated gradient models compute (defined by the autodiff, src/core/onnx/autodiff/loss.ts). */
export type { LossKind } from '../onnx/autodiff/types';
import type { LossKind } from '../onnx/autodiff/types';
export type Norm = 'linf' | 'l2';

export interface Classifier {
  /** Classes in the logits vector. */
  readonly numClasses: number;
  /** Per-sample input shape, without the batch dimension (e.g. [1, 28, 28]). */
  readonly sampleDims: readonly number[];
  /** Logits for a batch of n samples laid out contiguously: returns n * numClasses values. */
  logits(x: Float32Array, n: number): Promise<Float32Array>;
  /**
   * Gradient of the loss with respect to the input, for n samples with integer labels, plus the
   * logits of the same forward pass. `ce-sum`: sum over the batch of cross-entropy; `ce-mean`:
   * its mean; `cw`: sum over the batch of the Carlini-Wagner margin max_{j≠y} z_j - z_y;
   * `dlr`: sum over the batch of the Difference of Logits Ratio −(z_y − max_{j≠y} z_j) /
   * (z_π1 − z_π3 + 1e-12) (Croce & Hein 2020, π: logits sorted descending; ≥ 3 classes);
   * `dlr-targeted`: sum of −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12) with t = `targets`
   * (≥ 4 classes; the only loss that reads `targets`, and it needs them).
   * Undefined for classifiers with no gradient (gradient-free attacks only).
   */
  lossGradient?(x: Float32Array, n: number, labels: Int32Array, loss: LossKind, targets?: Int32Array): Promise<{ grad: Float32Array; logits: Float32Array }>;
  /**
   * Optional fused L∞ step of BIM/PGD: the logits at x and next = clip(clip(x + α·sign(∇ₓL),
   * x0 − eps, x0 + eps), lo, hi) from one call, the gradient never leaving the runtime. Same loss
   * conventions as lossGradient, except 'dlr-targeted' (it takes no targets here: use lossGradient);
   * α < 0 descends (targeted). Attacks fall back to lossGradient and the JavaScript step when it is
   * absent.
   */
  linfStep?(
    x: Float32Array,
    x0: Float32Array,
    n: number,
    labels: Int32Array,
    loss: LossKind,
    step: LinfStep,
  ): Promise<{ next: Float32Array; logits: Float32Array }>;
}

/** One L∞ step: size α (negative descends), ball radius eps around x0, valid range [lo, hi]. */
export interface LinfStep {
  alpha: number;
  eps: number;
  range: readonly [number, number];
}

/** The loss a gradient attack follows: cross-entropy or the Carlini-Wagner margin. */
export type AttackLoss = 'ce' | 'cw';

/** Options every attack takes. */
export interface AttackOptions {
  norm: Norm;
  /** Radius of the threat model's ball around each clean input, in `norm`. */
  eps: number;
  /** Valid input range [lo, hi]; every input the attack returns or queries lies in it. Default [0, 1]. */
  range?: readonly [number, number];
  /** Target labels, one per sample: the attack is targeted when given (succeeds on pred = target). */
  targets?: Int32Array;
  /**
   * Stable ids of the samples (e.g. their index in the data set): sample j draws its random numbers
   * from `rng.fork(sampleIds[j])`, so results do not depend on batching. Default: j.
   */
  sampleIds?: ArrayLike<number>;
  /** Checked between steps; the attack rejects with CancelledError (core/cancel.ts). */
  signal?: AbortSignal;
}

/** Per-sample outcome of one attack function on a batch of n samples (runAttack reduces these to AttackMetrics, the RunResult keeps an AttackResult entry). */
export interface AttackOutcome {
  /** The adversarial inputs (n × sample size, same layout as the input batch), inside [lo, hi]. */
  x: Float32Array;
  /** 1 where the attack succeeded: pred ≠ label (untargeted) or pred = target (targeted). */
  fooled: Uint8Array;
  /** The classifier's prediction on each returned input. */
  predictions: Int32Array;
  /** ‖x_adv − x‖∞ and ‖x_adv − x‖₂ actually used, per sample. */
  linf: Float64Array;
  l2: Float64Array;
  /** Gradient evaluations per sample (one per sample per lossGradient call it took part in). */
  gradientEvaluations: Int32Array;
  /** Forward passes (logits-only) per sample. */
  queries: Int32Array;
  /** Iterative attacks: the step of its run at which each sample was first fooled (−1: not fooled), and the steps per run. */
  fooledAtStep?: Int32Array;
  steps?: number;
}
