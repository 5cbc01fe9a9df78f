/**
 * APGD (Auto-PGD)
 *   name:      'apgd' (wrappers: apgdCe = APGD-CE, apgdDlr = APGD-DLR, apgdT = APGD-T; registry
 *              entries 'apgd-ce', 'apgd-dlr', 'apgd-t' in apgd-defaults.ts)
 *   title:     Auto-PGD: step-size-free PGD with momentum, on cross-entropy or the DLR loss
 *   reference: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
 *              diverse parameter-free attacks", ICML 2020 (Algorithm 1, Sections 3.2-3.3, 4)
 *   norms:     linf, l2; gradient attack (needs classifier.lossGradient)
 *   defaults:  steps 100, restarts 1, loss 'ce', targetClasses 9 (APGD-T), rho 0.75, momentum
 *              (α) 0.75, initial step 2·eps, random start (APGD_DEFAULTS)
 *
 * Algorithm 1, per sample, with s the steepest-ascent direction of the norm (sign for L∞, the unit
 * gradient for L2) and P the projection onto the eps-ball ∩ [lo, hi]:
 *   x⁽¹⁾ = P(x⁽⁰⁾ + η⁽⁰⁾ s(∇f(x⁽⁰⁾))),  η⁽⁰⁾ = 2·eps
 *   z⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ + η⁽ᵏ⁾ s(∇f(x⁽ᵏ⁾)))
 *   x⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ + α(z⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾) + (1 − α)(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾)),  α = 0.75
 * keeping x_max, the iterate with the highest loss f_max. At the checkpoints w_j = ⌈p_j·N_iter⌉,
 * p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) (apgdCheckpoints), the step
 * size halves and the iterate restarts from x_max (with its gradient) when
 *   1. Σ_{i=w_{j−1}}^{w_j−1} 1[f(x⁽ⁱ⁺¹⁾) > f(x⁽ⁱ⁾)] < ρ·(w_j − w_{j−1}),  ρ = 0.75, or
 *   2. η⁽ʷʲ⁻¹⁾ = η⁽ʷʲ⁾ (no halving at the previous checkpoint) and f_max⁽ʷʲ⁻¹⁾ = f_max⁽ʷʲ⁾.
 * Losses: 'ce' (cross-entropy), 'dlr' −(z_y − max_{j≠y} z_j)/(z_π1 − z_π3), and 'dlr-targeted'
 * −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2) (APGD-T: one run per target t among the `targetClasses`
 * most likely classes other than y at the clean input, in decreasing order, each run on the samples
 * not fooled yet). APGD-T is untargeted (success: prediction ≠ label). With `targets` given the
 * attack is targeted (success: prediction = target): 'ce' descends the cross-entropy at the target
 * and 'dlr'/'dlr-targeted' ascend the targeted DLR towards it, for `restarts` runs.
 *
 * Reading choices where the paper leaves room (the reference scripts/reference_apgd.py makes the
 * same ones):
 *  - a checkpoint is taken once f(x⁽ʷʲ⁾) is known, and on a halving x⁽ʷʲ⁾ itself is replaced by
 *    x_max (the next step then starts from x_max with momentum x_max − x⁽ʷʲ⁻¹⁾), as in the
 *    authors' code; condition 1 after a reset compares f(x⁽ʷʲ⁺¹⁾) with f_max;
 *  - condition 2 at the first checkpoint compares with f_max⁽⁰⁾ = f(x⁽⁰⁾) (the authors' code
 *    never halves by condition 2 at the first checkpoint);
 *  - checkpoints are deduplicated when ⌈p_j·N_iter⌉ repeats (N_iter < 34);
 *  - the random start is uniform in the ball (common.ts randomStart; the authors' code scales a
 *    random direction to the ball's boundary);
 *  - N_iter gradient evaluations per run (at x⁽⁰⁾ … x⁽ᴺ⁻¹⁾) and one forward pass at x⁽ᴺ⁾;
 *  - per-sample early stopping: a sample stops at its first misclassified iterate, which is what
 *    the attack returns for it; otherwise the iterate with the highest loss over all runs.
 * Loss values are computed here in float64 from the logits of the gradient call.
 */
import { UserError } from '../errors';
import type { Rng } from '../random';
import { APGD_DEFAULTS } from './apgd-defaults';
import {
  argmaxRow,
  BestTracker,
  checkInteger,
  checkPositive,
  gatherRows,
  keptRows,
  logitsChunked,
  project,
  randomStart,
  resolveContext,
  throwIfAborted,
  type AttackContext,
} from './common';
import { defineAttack } from './spec';
import type { AttackOptions, AttackOutcome, Classifier, LossKind } from './types';

export type ApgdLoss = 'ce' | 'dlr' | 'dlr-targeted';

export interface ApgdOptions extends AttackOptions {
  /** N_iter: gradient steps per run (default 100). */
  steps?: number;
  /** Runs per sample (APGD-T: per target class); later runs attack only samples not fooled yet. Default 1. */
  restarts?: number;
  /** 'ce' (APGD-CE, default), 'dlr' (APGD-DLR) or 'dlr-targeted' (APGD-T). */
  loss?: ApgdLoss;
  /** APGD-T: the number of most likely wrong classes targeted in turn (default 9, capped at classes − 1). */
  targetClasses?: number;
  /** ρ of condition 1 (default 0.75). */
  rho?: number;
  /** α, the weight of the new step against the previous move (default 0.75). */
  momentum?: number;
  /** Start from a uniform random point of the ball (default true); false starts at the clean input. */
  randomStart?: boolean;
}

/**
 * The checkpoints w_0 = 0 < w_1 < … ≤ steps of APGD: w_j = ⌈p_j · steps⌉ with p₀ = 0, p₁ = 0.22,
 * p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06); repeated values are dropped. Computed in whole
 * hundredths, so no float rounding moves a checkpoint (0.41 · 100 is 41, not 42).
 */
export function apgdCheckpoints(steps: number): number[] {
  checkInteger(steps, 'steps', 1);
  const p = [0, 22];
  while (p[p.length - 1] <= 100) {
    const j = p.length - 1;
    p.push(p[j] + Math.max(p[j] - p[j - 1] - 3, 6));
  }
  const w: number[] = [];
  for (const pj of p) {
    const wj = Math.floor((pj * steps + 99) / 100); // ⌈pj · steps / 100⌉ in integers
    if (wj > steps) break;
    if (w.length === 0 || wj > w[w.length - 1]) w.push(wj);
  }
  return w;
}

interface Plan {
  steps: number;
  restarts: number;
  loss: ApgdLoss;
  targetClasses: number;
  rho: number;
  momentum: number;
  randomStart: boolean;
}

/** APGD-CE, APGD-DLR or APGD-T (options.loss), L∞ or L2. See the top of this file. */
export async function apgd(classifier: Classifier, x: Float32Array, labels: Int32Array, options: ApgdOptions, rng?: Rng): Promise<AttackOutcome> {
  const ctx = resolveContext(classifier, x, labels, options, rng);
  const p = plan(options, ctx.k);
  if (!classifier.lossGradient) {
    throw new UserError(
      'APGD needs input gradients, which this model does not provide',
      "Use a gradient-free attack ('spsa' or 'square') or a differentiable model.",
    );
  }
  const gradient = classifier.lossGradient.bind(classifier);
  // Per sample over all runs: the first adversarial iterate, else the highest-loss one.
  const state = new BestTracker(ctx, x);
  throwIfAborted(ctx.signal);

  if (p.loss === 'dlr-targeted' && !ctx.targets) {
    // APGD-T: the classes other than y by decreasing clean logit, the lower index first among equals.
    const clean = await logitsChunked(classifier, x, ctx.n, ctx);
    for (let j = 0; j < ctx.n; j++) state.queries[j]++;
    const ranked = Array.from({ length: ctx.n }, (_, j) => {
      const z = clean.subarray(j * ctx.k, (j + 1) * ctx.k);
      return Array.from({ length: ctx.k }, (_, c) => c)
        .filter((c) => c !== ctx.labels[j])
        .sort((a, b) => z[b] - z[a] || a - b);
    });
    for (let c = 0; c < Math.min(p.targetClasses, ctx.k - 1); c++) {
      const targets = Int32Array.from(ranked, (r) => r[c]);
      for (let r = 0; r < p.restarts; r++) await runOnce(classifier, gradient, ctx, p, state, x, targets);
    }
  } else {
    for (let r = 0; r < p.restarts; r++) await runOnce(classifier, gradient, ctx, p, state, x, ctx.targets);
  }
  return state.result();
}

/** APGD on cross-entropy. */
export function apgdCe(classifier: Classifier, x: Float32Array, labels: Int32Array, options: Omit<ApgdOptions, 'loss'>, rng?: Rng): Promise<AttackOutcome> {
  return apgd(classifier, x, labels, { ...options, loss: 'ce' }, rng);
}

/** APGD on the DLR loss. */
export function apgdDlr(classifier: Classifier, x: Float32Array, labels: Int32Array, options: Omit<ApgdOptions, 'loss'>, rng?: Rng): Promise<AttackOutcome> {
  return apgd(classifier, x, labels, { ...options, loss: 'dlr' }, rng);
}

/** APGD-T: APGD on the targeted DLR loss, towards each of the `targetClasses` most likely wrong classes in turn. */
export function apgdT(classifier: Classifier, x: Float32Array, labels: Int32Array, options: Omit<ApgdOptions, 'loss'>, rng?: Rng): Promise<AttackOutcome> {
  return apgd(classifier, x, labels, { ...options, loss: 'dlr-targeted' }, rng);
}

function plan(options: ApgdOptions, k: number): Plan {
  const d = APGD_DEFAULTS;
  const loss = options.loss ?? d.loss;
  if (loss !== 'ce' && loss !== 'dlr' && loss !== 'dlr-targeted') {
    throw new UserError(`APGD does not know the loss '${String(loss)}'`, "Use 'ce', 'dlr' or 'dlr-targeted'.");
  }
  // The targeted DLR is the loss of a targeted DLR attack.
  const effective: ApgdLoss = options.targets && loss === 'dlr' ? 'dlr-targeted' : loss;
  const minClasses = effective === 'dlr' ? 3 : effective === 'dlr-targeted' ? 4 : 2;
  if (k < minClasses) {
    throw new UserError(`The ${effective} loss needs at least ${minClasses} classes; the model has ${k}`, "Use APGD with loss 'ce'.");
  }
  const rho = checkPositive(options.rho ?? d.rho, 'rho');
  const momentum = checkPositive(options.momentum ?? d.momentum, 'momentum', true);
  if (rho > 1) throw new UserError(`Invalid rho ${rho}`, 'rho must be in (0, 1].');
  if (momentum > 1) throw new UserError(`Invalid momentum ${momentum}`, 'The momentum α must be in [0, 1].');
  return {
    steps: checkInteger(options.steps ?? d.steps, 'steps', 1),
    restarts: checkInteger(options.restarts ?? d.restarts, 'restarts', 1),
    loss: effective,
    targetClasses: checkInteger(options.targetClasses ?? d.targetClasses, 'target classes', 1),
    rho,
    momentum,
    randomStart: options.randomStart ?? d.randomStart,
  };
}

/** log Σ exp(z) − z_c (float64). */
function crossEntropy(z: Float32Array, o: number, k: number, c: number): number {
  let mx = -Infinity;
  for (let j = 0; j < k; j++) if (z[o + j] > mx) mx = z[o + j];
  let s = 0;
  for (let j = 0; j < k; j++) s += Math.exp(z[o + j] - mx);
  return mx + Math.log(s) - z[o + c];
}

/** The 4 largest logits of a row, in decreasing order (values only: ties do not matter here). */
function top4(z: Float32Array, o: number, k: number): [number, number, number, number] {
  const t = [-Infinity, -Infinity, -Infinity, -Infinity];
  for (let j = 0; j < k; j++) {
    const v = z[o + j];
    if (v <= t[3]) continue;
    let i = 3;
    while (i > 0 && v > t[i - 1]) {
      t[i] = t[i - 1];
      i--;
    }
    t[i] = v;
  }
  return t as [number, number, number, number];
}

/** The objective f that APGD maximises, for row r of `z`, true label y and (targeted) target t. */
function objective(loss: ApgdLoss, targeted: boolean, z: Float32Array, r: number, k: number, y: number, t: number): number {
  const o = r * k;
  if (loss === 'ce') return targeted ? -crossEntropy(z, o, k, t) : crossEntropy(z, o, k, y);
  const s = top4(z, o, k);
  if (loss === 'dlr') {
    let other = -Infinity;
    for (let j = 0; j < k; j++) if (j !== y && z[o + j] > other) other = z[o + j];
    return -(z[o + y] - other) / (s[0] - s[2] + 1e-12);
  }
  return -(z[o + y] - z[o + t]) / (s[0] - (s[2] + s[3]) / 2 + 1e-12);
}

/**
 * One APGD run over the samples not fooled yet, from x⁽⁰⁾ (the clean input, or a random point of
 * the ball); `targets` per sample (targeted runs and APGD-T), else undefined.
 */
async function runOnce(
  classifier: Classifier,
  gradient: NonNullable<Classifier['lossGradient']>,
  ctx: AttackContext,
  p: Plan,
  out: BestTracker,
  x: Float32Array,
  targets: Int32Array | undefined,
): Promise<void> {
  const { d, k, eps } = ctx;
  // Active rows: sample ids `idx` and per-row state, gathered down as samples are fooled.
  let idx = keptRows(Array.from(out.fooled, (f) => !f));
  if (idx.length === 0) return;
  let x0 = gatherRows(x, idx, d);
  let xa: Float32Array = Float32Array.from(x0);
  if (p.randomStart) randomStart(xa, idx, ctx);
  let xPrev: Float32Array = Float32Array.from(xa);
  let xMax = new Float32Array(xa.length);
  let gMax = new Float32Array(xa.length);
  const m0 = idx.length;
  let eta = new Float64Array(m0).fill(APGD_DEFAULTS.initialStepFactor * eps);
  let fMax = new Float64Array(m0).fill(-Infinity);
  let fPrev = new Float64Array(m0);
  let fMaxAtCheck = new Float64Array(m0);
  let increases = new Int32Array(m0);
  let halvedAtCheck = new Uint8Array(m0);

  const checkpoints = apgdCheckpoints(p.steps);
  const checkpointAt = new Map(checkpoints.map((w, j) => [w, j]));
  const targeted = !!ctx.targets;
  // The classifier loss and the sign that turns its gradient into the ascent direction of f.
  const kind: LossKind = p.loss === 'ce' ? 'ce-sum' : p.loss;
  const sign = p.loss === 'ce' && targeted ? -1 : 1;

  out.steps = p.steps;
  for (let t = 0; idx.length > 0; t++) {
    throwIfAborted(ctx.signal);
    out.step = t;
    const m = idx.length;
    const y = gatherRows(ctx.labels, idx, 1);
    const tg = targets && gatherRows(targets, idx, 1);
    const f = (z: Float32Array, r: number) => objective(p.loss, targeted, z, r, k, y[r], tg ? tg[r] : -1);

    if (t === p.steps) {
      // x⁽ᴺ⁾ needs no gradient: a forward pass.
      const logits = await logitsChunked(classifier, xa, m, ctx);
      for (let r = 0; r < m; r++) {
        out.queries[idx[r]]++;
        out.record(idx[r], xa, r, f(logits, r), argmaxRow(logits, r, k));
      }
      break;
    }

    // The CE loss at the target (targeted CE) is the cross-entropy with the target as label.
    const lossLabels = p.loss === 'ce' && targeted ? tg! : y;
    const { grad, logits } = await gradient(xa, m, lossLabels, kind, p.loss === 'dlr-targeted' ? tg : undefined);
    if (grad.length !== m * d || logits.length !== m * k) {
      throw new Error(`classifier.lossGradient returned ${grad.length} gradient / ${logits.length} logit values for ${m} samples`);
    }
    const dir = Float32Array.from(grad);
    if (sign < 0) for (let i = 0; i < dir.length; i++) dir[i] = -dir[i];
    const done = new Uint8Array(m);
    const checkpoint = checkpointAt.get(t);
    for (let r = 0; r < m; r++) {
      const j = idx[r];
      out.gradientEvaluations[j]++;
      const fr = f(logits, r);
      if (out.record(j, xa, r, fr, argmaxRow(logits, r, k))) {
        done[r] = 1;
        continue;
      }
      const row = r * d;
      if (fr > fMax[r]) {
        fMax[r] = fr;
        xMax.set(xa.subarray(row, row + d), row);
        gMax.set(dir.subarray(row, row + d), row);
      }
      if (t > 0 && fr > fPrev[r]) increases[r]++;
      fPrev[r] = fr;
      if (t === 0) {
        fMaxAtCheck[r] = fMax[r]; // f_max⁽ʷ⁰⁾ = f(x⁽⁰⁾)
      } else if (checkpoint !== undefined) {
        const span = checkpoints[checkpoint] - checkpoints[checkpoint - 1];
        const condition1 = increases[r] < p.rho * span;
        const condition2 = !halvedAtCheck[r] && fMax[r] === fMaxAtCheck[r];
        halvedAtCheck[r] = condition1 || condition2 ? 1 : 0;
        fMaxAtCheck[r] = fMax[r];
        increases[r] = 0;
        if (halvedAtCheck[r]) {
          eta[r] /= 2;
          xa.set(xMax.subarray(row, row + d), row);
          dir.set(gMax.subarray(row, row + d), row);
          fPrev[r] = fMax[r];
        }
      }
    }

    // Samples fooled at x⁽ᵗ⁾ stop here; the others take their step.
    let stepDir = dir;
    if (done.includes(1)) {
      const keep = keptRows(Array.from(done, (v) => !v));
      idx = gatherRows(idx, keep, 1);
      if (idx.length === 0) break;
      stepDir = gatherRows(dir, keep, d);
      x0 = gatherRows(x0, keep, d);
      xa = gatherRows(xa, keep, d);
      xPrev = gatherRows(xPrev, keep, d);
      xMax = gatherRows(xMax, keep, d);
      gMax = gatherRows(gMax, keep, d);
      eta = gatherRows(eta, keep, 1);
      fMax = gatherRows(fMax, keep, 1);
      fPrev = gatherRows(fPrev, keep, 1);
      fMaxAtCheck = gatherRows(fMaxAtCheck, keep, 1);
      increases = gatherRows(increases, keep, 1);
      halvedAtCheck = Uint8Array.from(gatherRows(Int32Array.from(halvedAtCheck), keep, 1));
    }
    const next = step(xa, xPrev, x0, stepDir, eta, t === 0 ? 1 : p.momentum, ctx);
    xPrev = xa;
    xa = next;
  }
}

/** z = P(x + η s(dir)); x_next = P(x + α(z − x) + (1 − α)(x − x_prev)) per row (α = 1: x_next = z). */
function step(xa: Float32Array, xPrev: Float32Array, x0: Float32Array, dir: Float32Array, eta: Float64Array, alpha: number, ctx: AttackContext): Float32Array {
  const { d } = ctx;
  const m = eta.length;
  const z = new Float32Array(xa.length);
  for (let r = 0; r < m; r++) {
    const o = r * d;
    if (ctx.norm === 'linf') {
      for (let i = o; i < o + d; i++) z[i] = xa[i] + eta[r] * Math.sign(dir[i]);
    } else {
      let sq = 0;
      for (let i = o; i < o + d; i++) sq += dir[i] * dir[i];
      const f = sq > 0 ? eta[r] / Math.sqrt(sq) : 0;
      for (let i = o; i < o + d; i++) z[i] = xa[i] + f * dir[i];
    }
  }
  project(z, x0, m, ctx);
  if (alpha !== 1) {
    for (let i = 0; i < z.length; i++) z[i] = xa[i] + alpha * (z[i] - xa[i]) + (1 - alpha) * (xa[i] - xPrev[i]);
    project(z, x0, m, ctx);
  }
  return z;
}

const REFERENCE = 'Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks", ICML 2020';
const SPEC_DEFAULTS = {
  steps: APGD_DEFAULTS.steps,
  restarts: APGD_DEFAULTS.restarts,
  rho: APGD_DEFAULTS.rho,
  momentum: APGD_DEFAULTS.momentum,
  initialStepFactor: APGD_DEFAULTS.initialStepFactor,
  randomStart: APGD_DEFAULTS.randomStart,
};

/** APGD on cross-entropy: the first attack of the AutoAttack ensemble. */
export const APGD_CE = defineAttack({
  name: 'apgd-ce',
  title: 'Auto-PGD on cross-entropy (APGD-CE)',
  reference: REFERENCE,
  gradientFree: false,
  norms: ['linf', 'l2'],
  uses: ['steps', 'restarts', 'randomStart'],
  defaults: { ...SPEC_DEFAULTS, loss: 'ce' },
  run: (c, x, labels, o, rng) => apgdCe(c, x, labels, o, rng),
});

/** APGD on the DLR loss (invariant to shifts and rescaling of the logits). */
export const APGD_DLR = defineAttack({
  name: 'apgd-dlr',
  title: 'Auto-PGD on the DLR loss (APGD-DLR)',
  reference: REFERENCE,
  gradientFree: false,
  minClasses: 3,
  norms: ['linf', 'l2'],
  uses: ['steps', 'restarts', 'randomStart'],
  defaults: { ...SPEC_DEFAULTS, loss: 'dlr' },
  run: (c, x, labels, o, rng) => apgdDlr(c, x, labels, o, rng),
});

/** APGD on the targeted DLR loss over the most likely wrong classes: AutoAttack's second attack. */
export const APGD_T = defineAttack({
  name: 'apgd-t',
  title: 'Auto-PGD on the targeted DLR loss (APGD-T)',
  reference: REFERENCE,
  gradientFree: false,
  minClasses: 4,
  norms: ['linf', 'l2'],
  uses: ['steps', 'restarts', 'randomStart'],
  defaults: { ...SPEC_DEFAULTS, loss: 'dlr-targeted', targetClasses: APGD_DEFAULTS.targetClasses },
  run: (c, x, labels, o, rng) => apgdT(c, x, labels, o, rng),
});
