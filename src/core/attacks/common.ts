/**
 * Helpers shared by all attacks: option checks, projection onto the threat model, norms, the
 * margin objective, per-sample bookkeeping and random streams. Rows are samples: a batch of m
 * samples of size d is a Float32Array of m · d values.
 */
import { throwIfCancelled } from '../cancel';
import { UserError } from '../errors';
import { Rng } from '../random';
import { sizeOf } from '../tensor';
import type { AttackLoss, AttackOptions, AttackOutcome, Classifier, Norm } from './types';

/** Everything an attack needs about its batch, checked once. */
export interface AttackContext {
  n: number;
  /** Values per sample. */
  d: number;
  /** Classes. */
  k: number;
  norm: Norm;
  eps: number;
  lo: number;
  hi: number;
  labels: Int32Array;
  /** Target labels when targeted. */
  targets: Int32Array | undefined;
  signal: AbortSignal | undefined;
  /** The random stream of sample j (forked lazily from the attack's rng by the sample's id). */
  stream(j: number): Rng;
}

export function resolveContext(classifier: Classifier, x: Float32Array, labels: Int32Array, options: AttackOptions, rng: Rng | undefined): AttackContext {
  const n = labels.length;
  const d = sizeOf(classifier.sampleDims);
  const k = classifier.numClasses;
  if (x.length !== n * d) {
    throw new RangeError(`attack: input has ${x.length} values, expected ${n} samples × ${d}`);
  }
  const { norm, eps } = options;
  const [lo, hi] = checkThreatModel(norm, eps, options.range);
  checkLabels(labels, k, 'label');
  const targets = options.targets;
  if (targets) {
    if (targets.length !== n) throw new RangeError(`attack: ${targets.length} targets for ${n} samples`);
    checkLabels(targets, k, 'target label');
  }
  const ids = options.sampleIds;
  if (ids && ids.length !== n) throw new RangeError(`attack: ${ids.length} sample ids for ${n} samples`);
  const root = rng ?? new Rng(0);
  const streams = new Map<number, Rng>();
  const stream = (j: number): Rng => {
    let s = streams.get(j);
    if (!s) streams.set(j, (s = root.fork(ids ? ids[j] : j)));
    return s;
  };
  return { n, d, k, norm, eps, lo, hi, labels, targets, signal: options.signal, stream };
}

/** Checks norm, eps and range; returns the range (default [0, 1]). */
export function checkThreatModel(norm: Norm, eps: number, range: readonly [number, number] | undefined): [number, number] {
  if (norm !== 'linf' && norm !== 'l2') {
    throw new UserError(`Unknown norm '${String(norm)}'`, "Use 'linf' or 'l2'.");
  }
  if (!Number.isFinite(eps) || eps < 0) {
    throw new UserError(`Invalid epsilon ${eps}`, 'Epsilon must be a finite number ≥ 0.');
  }
  const [lo, hi] = range ?? [0, 1];
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) {
    throw new UserError(`Invalid input range [${lo}, ${hi}]`, 'The range needs finite lo < hi, e.g. [0, 1].');
  }
  return [lo, hi];
}

export function checkLabels(labels: Int32Array, k: number, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y < 0 || y >= k) {
      throw new UserError(`Sample ${i} has ${what} ${y}, outside the model's ${k} classes (0…${k - 1})`);
    }
  }
}

/** Throws CancelledError when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  throwIfCancelled(signal, 'The attack');
}

export function requireGradient(
  classifier: Classifier,
  /** The attack's title, for the error message. */
  title: string,
): NonNullable<Classifier['lossGradient']> {
  if (!classifier.lossGradient) {
    throw new UserError(
      `The ${title} needs input gradients, which this model does not provide`,
      "Use a gradient-free attack ('spsa' or 'square') or a differentiable model.",
    );
  }
  return classifier.lossGradient.bind(classifier);
}

/** A whole number ≥ min, or a UserError naming the option. */
export function checkInteger(value: number, name: string, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new UserError(`Invalid ${name} ${value}`, `${name} must be a whole number ≥ ${min}.`);
  }
  return value;
}

/** A finite number > 0 (or ≥ 0 when `allowZero`), or a UserError naming the option. */
export function checkPositive(value: number, name: string, allowZero = false): number {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new UserError(`Invalid ${name} ${value}`, `${name} must be a finite number ${allowZero ? '≥' : '>'} 0.`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Predictions and the margin objective

export function argmaxRow(logits: Float32Array, row: number, k: number): number {
  const o = row * k;
  let best = 0;
  for (let j = 1; j < k; j++) if (logits[o + j] > logits[o + best]) best = j;
  return best;
}

/**
 * The margin an attack maximises; success ⇔ margin > 0 (up to ties). Untargeted, with y the true
 * label: max_{j≠y} z_j − z_y (the Carlini-Wagner margin). Targeted, with y the target:
 * z_y − max_{j≠y} z_j.
 */
export function margin(logits: Float32Array, row: number, k: number, y: number, targeted: boolean): number {
  const o = row * k;
  let other = -Infinity;
  for (let j = 0; j < k; j++) if (j !== y && logits[o + j] > other) other = logits[o + j];
  return targeted ? logits[o + y] - other : other - logits[o + y];
}

/** Did the attack succeed on sample j given its prediction? */
export function succeeded(ctx: AttackContext, j: number, pred: number): boolean {
  return ctx.targets ? pred === ctx.targets[j] : pred !== ctx.labels[j];
}

// ---------------------------------------------------------------------------------------------
// Threat model: clipping, projection, norms, steps

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * Projects each row of `xa` onto {‖x − x0‖ ≤ eps} ∩ [lo, hi]^d, in place. Clipping to the range
 * after the ball projection cannot leave the ball: it only moves coordinates towards x0 ∈ [lo, hi].
 */
export function project(xa: Float32Array, x0: Float32Array, m: number, ctx: AttackContext): void {
  const { d, eps, lo, hi } = ctx;
  for (let r = 0; r < m; r++) {
    const o = r * d;
    if (ctx.norm === 'linf') {
      for (let i = o; i < o + d; i++) xa[i] = clamp(clamp(xa[i], x0[i] - eps, x0[i] + eps), lo, hi);
    } else {
      let sq = 0;
      for (let i = o; i < o + d; i++) sq += (xa[i] - x0[i]) ** 2;
      const norm = Math.sqrt(sq);
      const f = norm > eps ? eps / norm : 1;
      for (let i = o; i < o + d; i++) xa[i] = clamp(x0[i] + (xa[i] - x0[i]) * f, lo, hi);
    }
  }
}

/**
 * One steepest-ascent step of size alpha along `dir` in the attack's norm, in place: linf
 * x + alpha · sign(dir) (sign(0) = 0), l2 x + alpha · dir / ‖dir‖₂ (no change where ‖dir‖ = 0).
 */
export function ascentStep(xa: Float32Array, dir: Float32Array, m: number, alpha: number, ctx: AttackContext): void {
  const { d } = ctx;
  for (let r = 0; r < m; r++) {
    const o = r * d;
    if (ctx.norm === 'linf') {
      for (let i = o; i < o + d; i++) xa[i] = xa[i] + alpha * Math.sign(dir[i]);
    } else {
      let sq = 0;
      for (let i = o; i < o + d; i++) sq += dir[i] * dir[i];
      if (sq === 0) continue;
      const f = alpha / Math.sqrt(sq);
      for (let i = o; i < o + d; i++) xa[i] = xa[i] + f * dir[i];
    }
  }
}

/** A uniform random point of the eps-ball around each row of x0 (the rows' streams), clipped to the range. */
export function randomStart(xa: Float32Array, idx: Int32Array, ctx: AttackContext): void {
  const { d, eps } = ctx;
  for (let r = 0; r < idx.length; r++) {
    const rng = ctx.stream(idx[r]);
    const o = r * d;
    if (ctx.norm === 'linf') {
      for (let i = o; i < o + d; i++) xa[i] = xa[i] + eps * (2 * rng.next() - 1);
    } else {
      // Uniform in the l2 ball: a direction from an isotropic normal, radius eps · u^(1/d).
      const z = rng.normals(new Float64Array(d));
      let sq = 0;
      for (const v of z) sq += v * v;
      const f = sq > 0 ? (eps * Math.pow(rng.next(), 1 / d)) / Math.sqrt(sq) : 0;
      for (let i = 0; i < d; i++) xa[o + i] = xa[o + i] + f * z[i];
    }
  }
  for (let i = 0; i < xa.length; i++) xa[i] = clamp(xa[i], ctx.lo, ctx.hi);
}

/** Per-row ‖a − b‖∞ and ‖a − b‖₂ (in float64). */
export function perturbationNorms(a: Float32Array, b: Float32Array, n: number, d: number) {
  const linf = new Float64Array(n);
  const l2 = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let mx = 0;
    let sq = 0;
    for (let i = r * d; i < (r + 1) * d; i++) {
      const v = Math.abs(a[i] - b[i]);
      if (v > mx) mx = v;
      sq += v * v;
    }
    linf[r] = mx;
    l2[r] = Math.sqrt(sq);
  }
  return { linf, l2 };
}

// ---------------------------------------------------------------------------------------------
// Rows and classifier calls

/** Copies the rows `idx` of `src` (rows of `width` values) into a new array. */
export function gatherRows<T extends Float32Array | Float64Array | Int32Array>(src: T, idx: Int32Array, width: number): T {
  const out = new (src.constructor as new (n: number) => T)(idx.length * width);
  for (let r = 0; r < idx.length; r++) out.set(src.subarray(idx[r] * width, (idx[r] + 1) * width), r * width);
  return out;
}

/** Positions where keep[r] is set, as an index array (to gather the rows that stay active). */
export function keptRows(keep: ArrayLike<boolean | number>): Int32Array {
  const out: number[] = [];
  for (let r = 0; r < keep.length; r++) if (keep[r]) out.push(r);
  return Int32Array.from(out);
}

export function allRows(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

/** The labels the loss is taken at for rows `idx`: the targets (targeted) or the true labels. */
export function objectiveLabels(idx: Int32Array, ctx: AttackContext): Int32Array {
  return gatherRows(ctx.targets ?? ctx.labels, idx, 1);
}

/** The classifier loss an attack loss follows: summed over the batch, so rows stay independent. */
export function lossKind(loss: AttackLoss): 'ce-sum' | 'cw' {
  return loss === 'cw' ? 'cw' : 'ce-sum';
}

/**
 * The gradient of the attack objective for rows `idx`, oriented so that ascending it helps the
 * attack, with the logits of the same forward pass. Untargeted: ∇ of the loss at the true label
 * (CE or CW margin). Targeted: −∇ of the loss at the target, i.e. descend towards the target. The
 * loss is summed over the batch, so each row's gradient does not depend on the batch.
 */
export async function objectiveGradient(
  gradient: NonNullable<Classifier['lossGradient']>,
  xa: Float32Array,
  idx: Int32Array,
  loss: AttackLoss,
  ctx: AttackContext,
): Promise<{ dir: Float32Array; logits: Float32Array }> {
  const m = idx.length;
  const { grad, logits } = await gradient(xa, m, objectiveLabels(idx, ctx), lossKind(loss));
  if (grad.length !== m * ctx.d || logits.length !== m * ctx.k) {
    throw new Error(`classifier.lossGradient returned ${grad.length} gradient / ${logits.length} logit values for ${m} samples`);
  }
  const dir = Float32Array.from(grad);
  if (ctx.targets) for (let i = 0; i < dir.length; i++) dir[i] = -dir[i];
  return { dir, logits };
}

/** Logits of m rows, in forward passes of at most `maxRows` rows (bounds memory for big query batches). */
export async function logitsChunked(classifier: Classifier, x: Float32Array, m: number, ctx: AttackContext, maxRows = m): Promise<Float32Array> {
  const { d, k } = ctx;
  const out = new Float32Array(m * k);
  for (let start = 0; start < m; start += maxRows) {
    const rows = Math.min(maxRows, m - start);
    const chunk = start === 0 && rows === m ? x : x.slice(start * d, (start + rows) * d);
    const z = await classifier.logits(chunk, rows);
    if (z.length !== rows * k) throw new Error(`classifier.logits returned ${z.length} values for ${rows} samples`);
    out.set(z, start * k);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-sample bookkeeping

/**
 * Keeps, per sample, the first adversarial input found, or while there is none the evaluated
 * input with the highest margin; counts gradient evaluations and queries.
 */
export class BestTracker {
  readonly best: Float32Array;
  readonly bestMargin: Float64Array;
  readonly fooled: Uint8Array;
  readonly predictions: Int32Array;
  readonly gradientEvaluations: Int32Array;
  readonly queries: Int32Array;
  /** The step (of its run) at which each sample was first fooled; −1 when it was not. */
  readonly fooledAtStep: Int32Array;
  /** The iterative attack's current step and its steps per run, set by the attack (unset: no steps). */
  step = -1;
  steps = 0;

  constructor(
    private readonly ctx: AttackContext,
    private readonly x: Float32Array,
  ) {
    this.fooledAtStep = new Int32Array(ctx.n).fill(-1);
    this.best = Float32Array.from(x);
    this.bestMargin = new Float64Array(ctx.n).fill(-Infinity);
    this.fooled = new Uint8Array(ctx.n);
    this.predictions = new Int32Array(ctx.n).fill(-1);
    this.gradientEvaluations = new Int32Array(ctx.n);
    this.queries = new Int32Array(ctx.n);
  }

  /** Samples not fooled yet. */
  remaining(): Int32Array {
    return keptRows(Array.from(this.fooled, (f) => !f));
  }

  /**
   * Records the evaluation of rows `xa` (samples `idx`) with their `logits`; returns, per row,
   * the margin (to drive random search) and whether the sample is now fooled.
   */
  observe(idx: Int32Array, xa: Float32Array, logits: Float32Array): { margins: Float64Array; done: Uint8Array } {
    const { k } = this.ctx;
    const margins = new Float64Array(idx.length);
    const done = new Uint8Array(idx.length);
    for (let r = 0; r < idx.length; r++) {
      const j = idx[r];
      const pred = argmaxRow(logits, r, k);
      const mg = margin(logits, r, k, (this.ctx.targets ?? this.ctx.labels)[j], !!this.ctx.targets);
      margins[r] = mg;
      done[r] = this.record(j, xa, r, mg, pred) ? 1 : 0;
    }
    return { margins, done };
  }

  /**
   * Records sample j's input (row r of xa) with a score to maximise (a margin, or an attack's loss)
   * and its prediction: kept if it is the first adversarial one or, while there is none, the
   * best-scoring one. Returns whether the sample is fooled.
   */
  record(j: number, xa: Float32Array, r: number, score: number, pred: number): boolean {
    if (this.fooled[j]) return true;
    const success = succeeded(this.ctx, j, pred);
    if (success || score > this.bestMargin[j] || this.predictions[j] === -1) {
      this.best.set(xa.subarray(r * this.ctx.d, (r + 1) * this.ctx.d), j * this.ctx.d);
      this.bestMargin[j] = score;
      this.predictions[j] = pred;
    }
    if (success) {
      this.fooled[j] = 1;
      this.fooledAtStep[j] = this.step;
    }
    return success;
  }

  countGradients(idx: Int32Array): void {
    for (const j of idx) this.gradientEvaluations[j]++;
  }

  countQueries(idx: Int32Array, times = 1): void {
    for (const j of idx) this.queries[j] += times;
  }

  result(): AttackOutcome {
    const { linf, l2 } = perturbationNorms(this.best, this.x, this.ctx.n, this.ctx.d);
    return {
      x: this.best,
      fooled: this.fooled,
      predictions: this.predictions,
      linf,
      l2,
      gradientEvaluations: this.gradientEvaluations,
      queries: this.queries,
      ...(this.steps > 0 && { fooledAtStep: this.fooledAtStep, steps: this.steps }),
    };
  }
}
