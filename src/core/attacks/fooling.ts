/**
 * Fooling: the evaluation of the dAE paper (Spigler, "Denoising Autoencoders for Overgeneralization
 * in Neural Networks", after Nguyen et al. 2015). A Fooling Generator Network (FGN) — one fully
 * connected layer with a sigmoid output and a fixed random input z,
 *
 *   G(z) = lo + (hi − lo) · sigmoid(W z + b),   shaped as the classifier's input,
 *
 * is trained by gradient descent (Adam) on its parameters W, b to minimise the cross-entropy between
 * the classifier's output and a target class, −log score_target(G(z)), until the target's score
 * reaches a threshold (the paper: 90 % and 99 %) or a step limit. A run per (target, seed); the
 * fooling rate is the fraction of runs that reach the threshold and the average steps are taken over
 * the successful runs, as in the paper's tables.
 *
 * The classifier is seen through `ScoredClassifier`: class scores in [0, 1] and the gradient of
 * −log score_target with respect to the input. Both kinds of model fit:
 * - an undefended classifier with logits: `scoredFromLogits(classifier)` (scores = softmax(logits),
 *   gradient = the 'ce-sum' loss gradient towards the target);
 * - a model whose outputs are already probabilities that may sum to less than 1, such as the
 *   dAE-defended model with scores c(h)·softmax(logits): append a "reject class" with
 *   `appendRejectClassLogits` (logits [log s₁ … log s_C, log(1 − Σ s)], whose softmax is exactly
 *   (s, 1 − Σ s)), open it as an ordinary Classifier with C + 1 classes (OnnxClassifier: its
 *   generic autodiff then differentiates through c), and wrap it with `scoredFromRejectClassLogits`
 *   — its 'ce-sum' loss towards target t is then exactly −log s_t, gradient through c included.
 */
import { throwIfCancelled } from '../cancel';
import { UserError } from '../errors';
import { GraphBuilder } from '../onnx/builder';
import { tensorValueInfo } from '../onnx/cut';
import type { ModelProto } from '../onnx/proto';
import { Rng } from '../random';
import { sizeOf } from '../tensor';
import type { Classifier } from './types';

// ---------------------------------------------------------------------------------------------
// The classifier interface

export interface ScoredClassifier {
  readonly numClasses: number;
  /** Per-sample input shape, without the batch dimension. */
  readonly sampleDims: readonly number[];
  /** Class scores in [0, 1] for n samples (probabilities; a defense's may sum to < 1): n × numClasses. */
  scores(x: Float32Array, n: number): Promise<Float32Array>;
  /** ∇ₓ Σⱼ −log score_{targets[j]}(xⱼ) (row j: the gradient for sample j), and the scores of the same pass. */
  targetGradient(x: Float32Array, n: number, targets: Int32Array): Promise<{ grad: Float32Array; scores: Float32Array }>;
}

/** An undefended classifier with logits: scores = softmax(logits); −log softmax_t is the CE loss. */
export function scoredFromLogits(classifier: Classifier): ScoredClassifier {
  return {
    numClasses: classifier.numClasses,
    sampleDims: classifier.sampleDims,
    scores: async (x, n) => softmaxRows(await classifier.logits(x, n), classifier.numClasses),
    targetGradient: async (x, n, targets) => {
      const { grad, logits } = await requireLossGradient(classifier)(x, n, targets, 'ce-sum');
      return { grad, scores: softmaxRows(logits, classifier.numClasses) };
    },
  };
}

/**
 * A classifier built on `appendRejectClassLogits`: its C + 1 logits are [log s, log(1 − Σ s)], so
 * softmax gives back the scores s (and the reject mass) and its CE towards t is −log s_t.
 */
export function scoredFromRejectClassLogits(classifier: Classifier): ScoredClassifier {
  const k = classifier.numClasses - 1;
  if (k < 2) throw new UserError(`A reject-class classifier needs at least 3 outputs; this one has ${classifier.numClasses}.`);
  const dropReject = (logits: Float32Array): Float32Array => {
    const p = softmaxRows(logits, k + 1);
    const n = p.length / (k + 1);
    const out = new Float32Array(n * k);
    for (let j = 0; j < n; j++) out.set(p.subarray(j * (k + 1), j * (k + 1) + k), j * k);
    return out;
  };
  return {
    numClasses: k,
    sampleDims: classifier.sampleDims,
    scores: async (x, n) => dropReject(await classifier.logits(x, n)),
    targetGradient: async (x, n, targets) => {
      const { grad, logits } = await requireLossGradient(classifier)(x, n, targets, 'ce-sum');
      return { grad, scores: dropReject(logits) };
    },
  };
}

/** Added to every score before its log, so that log 0 never occurs (changes scores by ≤ 1e-30). */
const LOG_EPS = 1e-30;

/**
 * A copy of `model` with one more output, `outputName` = [log(s + ε), log(relu(1 − Σ s) + ε)]
 * ([N, C + 1]) computed from its probabilities output `scoresOutput` ([N, C]): open it as a
 * classifier on `outputName` with C + 1 classes and wrap it with `scoredFromRejectClassLogits`.
 * Plain ONNX (Add, Log, MatMul, Sub, Relu, Concat), so any ONNX autodiff differentiates it.
 */
export function appendRejectClassLogits(model: ModelProto, scoresOutput: string, numClasses: number, outputName = 'fooling_logits'): ModelProto {
  const graph = model.graph;
  if (!graph) throw new UserError('appendRejectClassLogits: the model has no graph.');
  const b = new GraphBuilder('reject_');
  const eps = b.scalar(LOG_EPS, 'eps');
  const logS = b.op('Log', [b.op('Add', [scoresOutput, eps])]);
  const total = b.op('MatMul', [scoresOutput, b.floatConst('ones', [numClasses, 1], new Float32Array(numClasses).fill(1))]); // [N, 1]
  const rest = b.op('Log', [b.op('Add', [b.op('Relu', [b.op('Sub', [b.scalar(1, 'one'), total])]), eps])]);
  b.node('Concat', [logS, rest], { axis: 1 }, [outputName]);
  return {
    ...model,
    graph: {
      ...graph,
      node: [...(graph.node ?? []), ...b.nodes],
      initializer: [...(graph.initializer ?? []), ...b.initializers],
      output: [...(graph.output ?? []), tensorValueInfo(outputName, ['N', numClasses + 1])],
    },
  };
}

function requireLossGradient(classifier: Classifier): NonNullable<Classifier['lossGradient']> {
  if (!classifier.lossGradient) {
    throw new UserError('The fooling generator needs input gradients, which this model does not provide.', 'Use a differentiable model.');
  }
  return classifier.lossGradient.bind(classifier);
}

export function softmaxRows(logits: Float32Array, k: number): Float32Array {
  const n = logits.length / k;
  const out = new Float32Array(logits.length);
  for (let j = 0; j < n; j++) {
    let mx = -Infinity;
    for (let c = 0; c < k; c++) mx = Math.max(mx, logits[j * k + c]);
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp(logits[j * k + c] - mx);
    for (let c = 0; c < k; c++) out[j * k + c] = Math.exp(logits[j * k + c] - mx) / s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The generator

/**
 * One FGN: x = lo + (hi − lo)·σ(W z + b), W ∈ R^{P×Z} (row-major), b ∈ R^P, z ∈ R^Z fixed.
 * Initial values from `rng`: z ~ N(0, 1), W ~ N(0, 1/Z) (so W z ~ N(0, 1) per pixel), b = 0.
 */
export class FoolingGenerator {
  readonly w: Float32Array;
  readonly b: Float32Array;
  readonly z: Float32Array;
  private readonly mW: Float32Array;
  private readonly vW: Float32Array;
  private readonly mB: Float32Array;
  private readonly vB: Float32Array;
  /** Adam updates applied so far. */
  steps = 0;

  constructor(
    readonly p: number,
    readonly latent: number,
    rng: Rng,
    readonly range: readonly [number, number] = [0, 1],
  ) {
    this.z = rng.fork('z').normals(new Float32Array(latent));
    this.w = rng.fork('w').normals(new Float32Array(p * latent), 0, 1 / Math.sqrt(latent));
    this.b = new Float32Array(p);
    this.mW = new Float32Array(p * latent);
    this.vW = new Float32Array(p * latent);
    this.mB = new Float32Array(p);
    this.vB = new Float32Array(p);
  }

  /** The pre-activation W z + b. */
  preActivation(): Float64Array {
    const { p, latent, w, z } = this;
    const a = Float64Array.from(this.b);
    for (let i = 0; i < p; i++) {
      let acc = 0;
      const row = i * latent;
      for (let q = 0; q < latent; q++) acc += w[row + q] * z[q];
      a[i] += acc;
    }
    return a;
  }

  /** The generated input G(z) (written into `out` when given). */
  image(out: Float32Array = new Float32Array(this.p)): Float32Array {
    const [lo, hi] = this.range;
    const a = this.preActivation();
    for (let i = 0; i < this.p; i++) out[i] = lo + (hi - lo) / (1 + Math.exp(-a[i]));
    return out;
  }

  /**
   * Chain rule through the generator: from g = ∂L/∂x (at x = this.image()) to ∂L/∂W = (g ⊙ x')zᵀ
   * and ∂L/∂b = g ⊙ x' with x' = (hi − lo)σ(a)(1 − σ(a)). Returns ∂L/∂a = g ⊙ x' (the rank-one factor).
   */
  parameterGradient(g: Float32Array): { ga: Float64Array; gradW(i: number, q: number): number } {
    const [lo, hi] = this.range;
    const a = this.preActivation();
    const ga = new Float64Array(this.p);
    for (let i = 0; i < this.p; i++) {
      const s = 1 / (1 + Math.exp(-a[i]));
      ga[i] = g[i] * (hi - lo) * s * (1 - s);
    }
    const z = this.z;
    return { ga, gradW: (i, q) => ga[i] * z[q] };
  }

  /** One Adam step on W and b with the input gradient g = ∂L/∂x at the current image. */
  adamStep(g: Float32Array, lr: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
    const { ga } = this.parameterGradient(g);
    this.steps++;
    const c1 = 1 - beta1 ** this.steps;
    const c2 = 1 - beta2 ** this.steps;
    const step = lr / c1;
    const { p, latent, w, z, mW, vW } = this;
    for (let i = 0; i < p; i++) {
      const gi = ga[i];
      const row = i * latent;
      for (let q = 0; q < latent; q++) {
        const grad = gi * z[q];
        const m = (mW[row + q] = beta1 * mW[row + q] + (1 - beta1) * grad);
        const v = (vW[row + q] = beta2 * vW[row + q] + (1 - beta2) * grad * grad);
        w[row + q] -= (step * m) / (Math.sqrt(v / c2) + eps);
      }
      const m = (this.mB[i] = beta1 * this.mB[i] + (1 - beta1) * gi);
      const v = (this.vB[i] = beta2 * this.vB[i] + (1 - beta2) * gi * gi);
      this.b[i] -= (step * m) / (Math.sqrt(v / c2) + eps);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Runs

export interface FoolingOptions {
  /** Target classes (default: every class). */
  targets?: readonly number[];
  /** One run per (target, seed). Default [0]. */
  seeds?: readonly number[];
  /** Confidence thresholds on the target's score. Default [0.9, 0.99]. */
  thresholds?: readonly number[];
  /** Step limit per run. Default 1000. */
  maxSteps?: number;
  /** Adam learning rate on the generator's W and b. Default 1e-4. */
  learningRate?: number;
  /** Size Z of the fixed random input z. Default min(P, max(16, ⌊4·10⁶ / P⌋)) (= P for MNIST-sized inputs, as in the paper). */
  latentSize?: number;
  /** Valid input range [lo, hi] the sigmoid output is mapped to. Default [0, 1]. */
  range?: readonly [number, number];
  /** Runs trained side by side (one classifier batch per step). Default 16. */
  batchSize?: number;
  /** Keep each run's final image in the result. */
  keepImages?: boolean;
  /** Checked between steps: the run rejects with CancelledError (core/cancel.ts). */
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface FoolingRun {
  target: number;
  seed: number;
  /** The target's score reached the threshold within the step limit. */
  success: boolean;
  /** Generator updates before the threshold was reached (success), else the step limit. */
  steps: number;
  /** The target's score at that point: when the threshold was reached, or at the end of the run. */
  finalConfidence: number;
}

export interface FoolingThresholdResult {
  threshold: number;
  runs: FoolingRun[];
  /** Successful runs / runs. */
  foolingRate: number;
  /** Mean steps over the successful runs (null when none succeeded). */
  averageSteps: number | null;
}

export interface FoolingResult {
  byThreshold: FoolingThresholdResult[];
  maxSteps: number;
  learningRate: number;
  latentSize: number;
  /** Classifier gradient evaluations (samples), over all runs. */
  gradientEvaluations: number;
  /** Final generated input of each run, when `keepImages`. */
  images?: { target: number; seed: number; x: Float32Array; confidence: number }[];
}

export const FOOLING_DEFAULTS = {
  seeds: [0] as readonly number[],
  thresholds: [0.9, 0.99] as readonly number[],
  maxSteps: 1000,
  learningRate: 1e-4,
  batchSize: 16,
} as const;

export function defaultLatentSize(p: number): number {
  return Math.min(p, Math.max(16, Math.floor(4e6 / p)));
}

interface RunState {
  target: number;
  seed: number;
  gen: FoolingGenerator;
  /** Per threshold: step reached (or -1) and the score then. */
  reached: number[];
  scoreAt: number[];
  lastScore: number;
  image: Float32Array;
}

/**
 * Trains one FGN per (target, seed) against `classifier` and reports, per threshold, which runs
 * reached it and after how many steps. Deterministic for given seeds (the generator of seed s starts
 * from the same z, W for every target).
 */
export async function foolingGenerator(classifier: ScoredClassifier, options: FoolingOptions = {}): Promise<FoolingResult> {
  const k = classifier.numClasses;
  const p = sizeOf(classifier.sampleDims);
  const targets = options.targets ?? Array.from({ length: k }, (_, i) => i);
  for (const t of targets) if (!Number.isInteger(t) || t < 0 || t >= k) throw new UserError(`Fooling target ${t} is outside the model's ${k} classes.`);
  const seeds = options.seeds ?? FOOLING_DEFAULTS.seeds;
  for (const s of seeds) if (!Number.isInteger(s)) throw new UserError(`Invalid fooling seed ${s}`, 'Seeds are integers.');
  const thresholds = [...(options.thresholds ?? FOOLING_DEFAULTS.thresholds)];
  for (const t of thresholds) if (!(t > 0 && t <= 1)) throw new UserError(`Invalid fooling threshold ${t}`, 'Thresholds are confidences in (0, 1].');
  const maxSteps = options.maxSteps ?? FOOLING_DEFAULTS.maxSteps;
  if (!Number.isInteger(maxSteps) || maxSteps < 0) throw new UserError(`Invalid fooling step limit ${maxSteps}`);
  const lr = options.learningRate ?? FOOLING_DEFAULTS.learningRate;
  if (!(lr > 0) || !Number.isFinite(lr)) throw new UserError(`Invalid fooling learning rate ${lr}`);
  const latent = options.latentSize ?? defaultLatentSize(p);
  if (!Number.isInteger(latent) || latent < 1) throw new UserError(`Invalid fooling latent size ${latent}`);
  const range = options.range ?? ([0, 1] as const);
  if (!(range[0] < range[1])) throw new UserError(`Invalid input range [${range[0]}, ${range[1]}]`);
  const batchSize = Math.max(1, options.batchSize ?? FOOLING_DEFAULTS.batchSize);
  const signal = options.signal;

  const pending: { target: number; seed: number }[] = [];
  for (const seed of seeds) for (const target of targets) pending.push({ target, seed });
  const finished: RunState[] = [];
  const active: RunState[] = [];
  let gradientEvaluations = 0;
  const total = pending.length;
  const top = Math.max(...thresholds);

  const start = (job: { target: number; seed: number }): RunState => {
    const gen = new FoolingGenerator(p, latent, new Rng(job.seed).fork('fooling-generator'), range);
    return { ...job, gen, reached: thresholds.map(() => -1), scoreAt: thresholds.map(() => NaN), lastScore: NaN, image: gen.image() };
  };

  while (active.length || pending.length) {
    throwIfAborted(signal);
    while (active.length < batchSize && pending.length) active.push(start(pending.shift()!));
    // One classifier pass for every active run: scores and gradient at the current images.
    const n = active.length;
    const x = new Float32Array(n * p);
    const tgt = new Int32Array(n);
    active.forEach((r, j) => {
      x.set(r.image, j * p);
      tgt[j] = r.target;
    });
    const { grad, scores } = await classifier.targetGradient(x, n, tgt);
    gradientEvaluations += n;
    const done: RunState[] = [];
    active.forEach((r, j) => {
      const s = scores[j * k + r.target];
      r.lastScore = s;
      const runStep = r.gen.steps;
      thresholds.forEach((t, i) => {
        if (r.reached[i] < 0 && s >= t) {
          r.reached[i] = runStep;
          r.scoreAt[i] = s;
        }
      });
      if (s >= top || runStep >= maxSteps || !Number.isFinite(s)) {
        done.push(r);
        return;
      }
      r.gen.adamStep(grad.subarray(j * p, (j + 1) * p), lr);
      r.gen.image(r.image);
    });
    for (const r of done) {
      active.splice(active.indexOf(r), 1);
      finished.push(r);
      options.onProgress?.(finished.length, total);
    }
    // Let an AbortSignal through.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  const order = new Map<string, number>();
  seeds.forEach((s, si) => targets.forEach((t, ti) => order.set(`${t}/${s}`, si * targets.length + ti)));
  finished.sort((a, b) => order.get(`${a.target}/${a.seed}`)! - order.get(`${b.target}/${b.seed}`)!);
  const byThreshold = thresholds.map((threshold, i): FoolingThresholdResult => {
    const runs = finished.map((r): FoolingRun => {
      const success = r.reached[i] >= 0;
      return { target: r.target, seed: r.seed, success, steps: success ? r.reached[i] : r.gen.steps, finalConfidence: success ? r.scoreAt[i] : r.lastScore };
    });
    const ok = runs.filter((r) => r.success);
    return {
      threshold,
      runs,
      foolingRate: runs.length ? ok.length / runs.length : 0,
      averageSteps: ok.length ? ok.reduce((a, r) => a + r.steps, 0) / ok.length : null,
    };
  });
  return {
    byThreshold,
    maxSteps,
    learningRate: lr,
    latentSize: latent,
    gradientEvaluations,
    ...(options.keepImages ? { images: finished.map((r) => ({ target: r.target, seed: r.seed, x: r.image, confidence: r.lastScore })) } : {}),
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  throwIfCancelled(signal, 'The fooling run');
}
