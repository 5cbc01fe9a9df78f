/**
 * FAB-T: the targeted Fast Adaptive Boundary attack, as run in AutoAttack's standard ensemble
 *   name:      'fab-t' (FAB_T; the function fabT)
 *   reference: Croce & Hein, "Minimally distorted Adversarial Examples with a Fast Adaptive Boundary
 *              Attack", ICML 2020; targeted version and settings from Croce & Hein, "Reliable
 *              evaluation of adversarial robustness with an ensemble of diverse parameter-free
 *              attacks", ICML 2020
 *   norms:     linf, l2; gradient attack (needs classifier.lossGradient)
 *   defaults:  100 iterations per run, 1 run per target class (restarts), 9 target classes,
 *              α_max 0.1, η 1.05, β 0.9 (FAB_DEFAULTS)
 *
 * FAB is a minimum-norm attack. Per target class t (the `targetClasses` classes other than the label y
 * with the highest clean logits, in decreasing order), per sample, from x⁽⁰⁾ = x_orig:
 *   g(x) = z_t(x) − z_y(x), linearised at x⁽ⁱ⁾:  π = { z : g(x⁽ⁱ⁾) + ⟨∇g(x⁽ⁱ⁾), z − x⁽ⁱ⁾⟩ = 0 }
 *   δ⁽ⁱ⁾    = proj_p(x⁽ⁱ⁾, π ∩ C) − x⁽ⁱ⁾,  δ_orig = proj_p(x_orig, π ∩ C) − x_orig    (C = [lo, hi]^d)
 *   α       = min(‖δ⁽ⁱ⁾‖_p / (‖δ⁽ⁱ⁾‖_p + ‖δ_orig‖_p), α_max)                        (norms floored at 1e-8)
 *   x⁽ⁱ⁺¹⁾  = clip_C((1 − α)(x⁽ⁱ⁾ + η δ⁽ⁱ⁾) + α (x_orig + η δ_orig))
 *   if x⁽ⁱ⁺¹⁾ is misclassified (prediction ≠ y): it is a candidate, and the backward step
 *   x⁽ⁱ⁺¹⁾ ← x_orig + β (x⁽ⁱ⁺¹⁾ − x_orig) follows.
 * proj_p is the exact projection onto the intersection of the hyperplane with the box
 * (HyperplaneProjector: L∞ and L2 share one breakpoint search; when the hyperplane does not meet
 * the box, every coordinate moves to the bound on the hyperplane's side). Restarts after the first
 * start from x_orig + ½·eps·u / ‖u‖_p clipped to C, u uniform in [−1, 1]^d (L∞) or standard normal
 * (L2), from the sample's own random stream.
 *
 * Success is AutoAttack's: a sample counts as fooled only when an adversarial point within eps was
 * found (prediction ≠ label, whatever the target). FAB-T has no mode towards given labels: its plan
 * does not read 'targeted', and `options.targets` is ignored (fooled still means prediction ≠ label). The
 * trajectory of FAB does not depend on eps (only the random starts do), so a sample stops at the
 * first candidate within eps: the set of samples fooled is the one a full run that keeps the
 * minimum-norm candidate would give. It returns that candidate; samples not fooled get their clean
 * input back (as AutoAttack does), with their clean prediction.
 *
 * The gradient of z_t − z_y comes from the classifier's 'cw' loss (logitDifferenceGradient): with
 * the target as label its gradient is ∇(max_{j≠t} z_j − z_t), exactly −∇(z_t − z_y) wherever y is
 * the first argmax of the logits without t (so at every point predicted as y); with y as label it
 * is ∇(max_{j≠y} z_j − z_y), exactly ∇(z_t − z_y) wherever t is the first argmax without y (tried
 * for points still misclassified after a backward step). The condition is checked on the logits
 * the call returns; where neither holds, the gradient is the difference of two 'ce-sum' gradients,
 * ∇CE(y) − ∇CE(t) = Jᵀ(e_t − e_y), exact as well. So any classifier with 'cw' and 'ce-sum'
 * gradients (lanes, defended models) works, at one gradient per iterate in the common case.
 *
 * Evaluations: the reference takes a gradient at x⁽ⁱ⁾ and a forward pass at x⁽ⁱ⁺¹⁾ per iteration;
 * here the gradient call at x⁽ⁱ⁺¹⁾ also gives the logits of the adversarial check, so an iteration
 * costs one gradient (two after a backward step), and the last iterate a forward pass. One forward
 * pass at the clean inputs picks the targets. gradientEvaluations counts gradient rows (the
 * cross-entropy pair counts 2).
 *
 * Where this differs from the authors' code (fra31/auto-attack, fab_base.py), none of it changing
 * which samples are fooled at eps: per-sample early stop at the first candidate within eps (above);
 * the projections in float64, coordinates with w_i = 0 fixed (their L2 projection also fixes
 * |w_i| < 1e-8); the range [lo, hi] instead of [0, 1]; among equal clean logits the lower class
 * index is targeted first. scripts/reference_fab.py is an independent PyTorch implementation that
 * keeps the reference's full minimum-norm runs (test/fixtures/fab-reference.json).
 */
import { UserError } from '../errors';
import type { Rng } from '../random';
import {
  argmaxRow,
  checkInteger,
  checkPositive,
  clamp,
  gatherRows,
  keptRows,
  logitsChunked,
  perturbationNorms,
  requireGradient,
  resolveContext,
  throwIfAborted,
  type AttackContext,
} from './common';
import { defineAttack } from './spec';
import type { AttackOptions, AttackOutcome, Classifier, Norm } from './types';

export interface FabOptions extends AttackOptions {
  /** Iterations per run (default 100). */
  steps?: number;
  /** Runs per target class; runs after the first start from a random point (default 1). */
  restarts?: number;
  /** How many of the most likely classes other than the label are targeted in turn (default 9, capped at classes − 1). */
  targetClasses?: number;
  /** Largest weight α of the step from the original point (default 0.1). */
  alphaMax?: number;
  /** Overshoot η of the projection step (default 1.05). */
  eta?: number;
  /** Backward step β ∈ (0, 1) towards the original point after an adversarial iterate (default 0.9). */
  beta?: number;
}

/** The settings of AutoAttack's standard FAB-T (and FAB's own α_max, η, β). */
export const FAB_DEFAULTS = { steps: 100, restarts: 1, targetClasses: 9, alphaMax: 0.1, eta: 1.05, beta: 0.9 } as const;

const TITLE = 'Fast Adaptive Boundary attack, targeted (FAB-T)';

export const FAB_T = defineAttack({
  name: 'fab-t',
  title: TITLE,
  reference: 'Croce & Hein, "Minimally distorted Adversarial Examples with a Fast Adaptive Boundary Attack", ICML 2020',
  gradientFree: false,
  norms: ['linf', 'l2'],
  uses: ['steps', 'restarts'],
  defaults: FAB_DEFAULTS,
  run: (c, x, labels, o, rng) => fabT(c, x, labels, o, rng),
});

interface Plan {
  steps: number;
  restarts: number;
  targetClasses: number;
  alphaMax: number;
  eta: number;
  beta: number;
}

function plan(options: FabOptions, k: number): Plan {
  const d = FAB_DEFAULTS;
  if (k < 2) throw new UserError(`FAB-T needs at least 2 classes; the model has ${k}`);
  const alphaMax = checkPositive(options.alphaMax ?? d.alphaMax, 'alpha max', true);
  const eta = checkPositive(options.eta ?? d.eta, 'eta');
  const beta = checkPositive(options.beta ?? d.beta, 'beta');
  if (alphaMax > 1) throw new UserError(`Invalid alpha max ${alphaMax}`, 'α_max must be in [0, 1].');
  if (beta >= 1) throw new UserError(`Invalid beta ${beta}`, 'The backward step β must be in (0, 1).');
  return {
    steps: checkInteger(options.steps ?? d.steps, 'steps', 1),
    restarts: checkInteger(options.restarts ?? d.restarts, 'restarts', 1),
    targetClasses: Math.min(checkInteger(options.targetClasses ?? d.targetClasses, 'target classes', 1), k - 1),
    alphaMax,
    eta,
    beta,
  };
}

/** FAB-T, L∞ or L2. See the top of this file. */
export async function fabT(classifier: Classifier, x: Float32Array, labels: Int32Array, options: FabOptions, rng?: Rng): Promise<AttackOutcome> {
  // FAB-T picks its own target classes and succeeds on any misclassification: its plan does not
  // read 'targeted', so given target labels do not change what it does.
  const ctx = resolveContext(classifier, x, labels, { ...options, targets: undefined }, rng);
  const p = plan(options, ctx.k);
  const gradient = requireGradient(classifier, TITLE);
  const { n, k } = ctx;
  const out = new Outcome(ctx, x);
  throwIfAborted(ctx.signal);

  // The clean pass: samples misclassified already are fooled; the others get their targets, the
  // classes other than y by decreasing clean logit (the lower index first among equal logits).
  const clean = await logitsChunked(classifier, x, n, ctx);
  const ranked: number[][] = [];
  for (let j = 0; j < n; j++) {
    out.queries[j]++;
    const pred = argmaxRow(clean, j, k);
    out.predictions[j] = pred;
    if (pred !== ctx.labels[j]) out.fooled[j] = 1;
    const z = clean.subarray(j * k, (j + 1) * k);
    ranked.push(
      Array.from({ length: k }, (_, c) => c)
        .filter((c) => c !== ctx.labels[j])
        .sort((a, b) => z[b] - z[a] || a - b),
    );
  }
  // No point other than the clean one lies within eps = 0.
  if (ctx.eps === 0) return out.result();

  for (let c = 0; c < p.targetClasses; c++) {
    const targets = Int32Array.from(ranked, (r) => r[c]);
    for (let r = 0; r < p.restarts; r++) await runOnce(classifier, gradient, ctx, p, out, x, targets, r > 0);
  }
  return out.result();
}

/** Per-sample outcome: the first adversarial point within eps, else the clean input. */
class Outcome {
  readonly x: Float32Array;
  readonly fooled: Uint8Array;
  readonly predictions: Int32Array;
  readonly gradientEvaluations: Int32Array;
  readonly queries: Int32Array;

  constructor(
    private readonly ctx: AttackContext,
    private readonly clean: Float32Array,
  ) {
    this.x = Float32Array.from(clean);
    this.fooled = new Uint8Array(ctx.n);
    this.predictions = new Int32Array(ctx.n).fill(-1);
    this.gradientEvaluations = new Int32Array(ctx.n);
    this.queries = new Int32Array(ctx.n);
  }

  result(): AttackOutcome {
    const { linf, l2 } = perturbationNorms(this.x, this.clean, this.ctx.n, this.ctx.d);
    return {
      x: this.x,
      fooled: this.fooled,
      predictions: this.predictions,
      linf,
      l2,
      gradientEvaluations: this.gradientEvaluations,
      queries: this.queries,
    };
  }
}

/** The first index of the largest logit of row r, class `skip` left out. */
function argmaxWithout(z: Float32Array, r: number, k: number, skip: number): number {
  const o = r * k;
  let best = -1;
  for (let j = 0; j < k; j++) if (j !== skip && (best < 0 || z[o + j] > z[o + best])) best = j;
  return best;
}

/**
 * ∇ₓ(z_t − z_y) and z_t − z_y at m points (rows of xs), labels y and targets t, with the logits.
 * One 'cw' gradient with the targets as labels is −∇(z_t − z_y) where y is the first argmax of the
 * logits without t (`valid`). With `fallback`, the other rows are retried with y as the cw label,
 * which gives ∇(z_t − z_y) where t is the first argmax without y, and the rows where neither holds
 * are recomputed as ∇CE(y) − ∇CE(t) from one 'ce-sum' call on them twice; without it they are left
 * invalid. `evaluations[r]`: gradient rows spent on row r.
 */
export async function logitDifferenceGradient(
  gradient: NonNullable<Classifier['lossGradient']>,
  xs: Float32Array,
  m: number,
  y: Int32Array,
  t: Int32Array,
  k: number,
  fallback: boolean,
): Promise<{ grad: Float32Array; diff: Float64Array; logits: Float32Array; valid: Uint8Array; evaluations: Int32Array }> {
  const d = xs.length / m;
  const call = async (rows: Float32Array, count: number, labels: Int32Array, loss: 'cw' | 'ce-sum') => {
    const res = await gradient(rows, count, labels, loss);
    if (res.grad.length !== count * d || res.logits.length !== count * k) {
      throw new Error(`classifier.lossGradient returned ${res.grad.length} gradient / ${res.logits.length} logit values for ${count} samples`);
    }
    return res;
  };
  const first = await call(xs, m, t, 'cw');
  const logits = first.logits;
  const grad = new Float32Array(m * d);
  const diff = new Float64Array(m);
  const valid = new Uint8Array(m);
  const evaluations = new Int32Array(m).fill(1);
  for (let r = 0; r < m; r++) {
    diff[r] = logits[r * k + t[r]] - logits[r * k + y[r]];
    valid[r] = argmaxWithout(logits, r, k, t[r]) === y[r] ? 1 : 0;
    for (let i = r * d; i < (r + 1) * d; i++) grad[i] = -first.grad[i];
  }
  if (!fallback) return { grad, diff, logits, valid, evaluations };

  // Second try: y as the cw label, where t leads the logits without y.
  let redo = keptRows(Array.from(valid, (v) => !v));
  if (redo.length > 0) {
    const byY = keptRows(Array.from(redo, (r) => argmaxWithout(logits, r, k, y[r]) === t[r]));
    if (byY.length > 0) {
      const rows = Int32Array.from(byY, (s) => redo[s]);
      const second = await call(gatherRows(xs, rows, d), rows.length, gatherRows(y, rows, 1), 'cw');
      for (let s = 0; s < rows.length; s++) {
        const r = rows[s];
        evaluations[r]++;
        // The same point, so the same logits up to rounding: check again on these.
        if (argmaxWithout(second.logits, s, k, y[r]) !== t[r]) continue;
        grad.set(second.grad.subarray(s * d, (s + 1) * d), r * d);
        valid[r] = 1;
      }
      redo = keptRows(Array.from(valid, (v) => !v));
    }
  }
  // Last resort: ∇CE(y) − ∇CE(t) = Jᵀ(e_t − e_y).
  if (redo.length > 0) {
    const q = redo.length;
    const rows = gatherRows(xs, redo, d);
    const twice = new Float32Array(2 * q * d);
    twice.set(rows, 0);
    twice.set(rows, q * d);
    const pair = new Int32Array(2 * q);
    for (let s = 0; s < q; s++) {
      pair[s] = y[redo[s]];
      pair[q + s] = t[redo[s]];
    }
    const ce = await call(twice, 2 * q, pair, 'ce-sum');
    for (let s = 0; s < q; s++) {
      const r = redo[s];
      for (let i = 0; i < d; i++) grad[r * d + i] = ce.grad[s * d + i] - ce.grad[(q + s) * d + i];
      valid[r] = 1;
      evaluations[r] += 2;
    }
  }
  return { grad, diff, logits, valid, evaluations };
}

/**
 * One FAB run towards `targets` over the samples not fooled yet, from the clean inputs or
 * (`random`) from random points at distance eps/2.
 */
async function runOnce(
  classifier: Classifier,
  gradient: NonNullable<Classifier['lossGradient']>,
  ctx: AttackContext,
  p: Plan,
  out: Outcome,
  x: Float32Array,
  targets: Int32Array,
  random: boolean,
): Promise<void> {
  const { d, k, eps, lo, hi } = ctx;
  let idx = keptRows(Array.from(out.fooled, (f) => !f));
  if (idx.length === 0) return;
  let x0 = gatherRows(x, idx, d);
  let xa: Float32Array = Float32Array.from(x0);
  if (random) fabRandomStart(xa, x0, idx, ctx);
  let y = gatherRows(ctx.labels, idx, 1);
  let tg = gatherRows(targets, idx, 1);
  // The linearisation at xa: ∇(z_t − z_y) and z_t − z_y per row; `stale` rows need a new one.
  let grad: Float32Array = new Float32Array(xa.length);
  let diff: Float64Array = new Float64Array(idx.length);
  let stale: Uint8Array = new Uint8Array(idx.length).fill(1);
  const projector = new HyperplaneProjector(d);
  const d1 = new Float64Array(d);
  const d2 = new Float64Array(d);

  for (let it = 0; it < p.steps && idx.length > 0; it++) {
    throwIfAborted(ctx.signal);
    const m = idx.length;
    const redo = keptRows(stale);
    if (redo.length > 0) {
      const g = await logitDifferenceGradient(gradient, gatherRows(xa, redo, d), redo.length, gatherRows(y, redo, 1), gatherRows(tg, redo, 1), k, true);
      for (let s = 0; s < redo.length; s++) {
        const r = redo[s];
        out.gradientEvaluations[idx[r]] += g.evaluations[s];
        grad.set(g.grad.subarray(s * d, (s + 1) * d), r * d);
        diff[r] = g.diff[s];
      }
      stale.fill(0);
    }

    // The FAB step, row by row (the projections in float64).
    for (let r = 0; r < m; r++) {
      const o = r * d;
      const w = grad.subarray(o, o + d);
      const x1 = xa.subarray(o, o + d);
      const xo = x0.subarray(o, o + d);
      // g(z) ≈ diff + ⟨w, z − x1⟩: its value at x1 and at x_orig.
      let atOrig = diff[r];
      for (let i = 0; i < d; i++) atOrig += w[i] * (xo[i] - x1[i]);
      projector.project(x1, w, diff[r], ctx.norm, lo, hi, d1);
      projector.project(xo, w, atOrig, ctx.norm, lo, hi, d2);
      const a1 = Math.max(normOf(d1, ctx.norm), 1e-8);
      const a2 = Math.max(normOf(d2, ctx.norm), 1e-8);
      const alpha = Math.min(Math.max(a1 / (a1 + a2), 0), p.alphaMax);
      for (let i = 0; i < d; i++) {
        x1[i] = clamp((x1[i] + p.eta * d1[i]) * (1 - alpha) + (xo[i] + p.eta * d2[i]) * alpha, lo, hi);
      }
    }

    // Is x⁽ⁱ⁺¹⁾ adversarial? The gradient call at it gives the logits and, for the rows that stay
    // put, the next linearisation; the last iterate needs only a forward pass.
    let logits: Float32Array;
    if (it + 1 < p.steps) {
      const g = await logitDifferenceGradient(gradient, xa, m, y, tg, k, false);
      for (let r = 0; r < m; r++) out.gradientEvaluations[idx[r]] += g.evaluations[r];
      grad = g.grad;
      diff = g.diff;
      logits = g.logits;
      stale = Uint8Array.from(g.valid, (v) => 1 - v);
    } else {
      logits = await logitsChunked(classifier, xa, m, ctx);
      for (const j of idx) out.queries[j]++;
    }
    const done = new Uint8Array(m);
    for (let r = 0; r < m; r++) {
      const pred = argmaxRow(logits, r, k);
      if (pred === y[r]) continue;
      const o = r * d;
      if (distance(xa, x0, o, d, ctx.norm) <= eps) {
        const j = idx[r];
        out.x.set(xa.subarray(o, o + d), j * d);
        out.fooled[j] = 1;
        out.predictions[j] = pred;
        done[r] = 1;
      } else {
        // The backward step; the gradient at the new point is taken next iteration.
        for (let i = o; i < o + d; i++) xa[i] = x0[i] + p.beta * (xa[i] - x0[i]);
        stale[r] = 1;
      }
    }
    if (done.includes(1)) {
      const keep = keptRows(Array.from(done, (v) => !v));
      idx = gatherRows(idx, keep, 1);
      x0 = gatherRows(x0, keep, d);
      xa = gatherRows(xa, keep, d);
      y = gatherRows(y, keep, 1);
      tg = gatherRows(tg, keep, 1);
      grad = gatherRows(grad, keep, d);
      diff = gatherRows(diff, keep, 1);
      stale = Uint8Array.from(gatherRows(Int32Array.from(stale), keep, 1));
    }
  }
}

/** x_orig + ½·eps·u/‖u‖ clipped to the range: u uniform in [−1, 1]^d (L∞) or normal (L2), per sample stream. */
function fabRandomStart(xa: Float32Array, x0: Float32Array, idx: Int32Array, ctx: AttackContext): void {
  const { d, eps, lo, hi } = ctx;
  const u = new Float64Array(d);
  for (let r = 0; r < idx.length; r++) {
    const rng = ctx.stream(idx[r]);
    if (ctx.norm === 'linf') rng.uniform(u, -1, 1);
    else rng.normals(u);
    const size = normOf(u, ctx.norm);
    const f = size > 0 ? (0.5 * eps) / size : 0;
    for (let i = 0; i < d; i++) xa[r * d + i] = clamp(x0[r * d + i] + f * u[i], lo, hi);
  }
}

function normOf(v: Float64Array, norm: Norm): number {
  let s = 0;
  if (norm === 'linf') {
    for (let i = 0; i < v.length; i++) s = Math.max(s, Math.abs(v[i]));
    return s;
  }
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** ‖a − b‖ over the d values from offset o (float64). */
function distance(a: Float32Array, b: Float32Array, o: number, d: number, norm: Norm): number {
  let s = 0;
  for (let i = o; i < o + d; i++) {
    const v = Math.abs(a[i] - b[i]);
    if (norm === 'linf') s = Math.max(s, v);
    else s += v * v;
  }
  return norm === 'linf' ? s : Math.sqrt(s);
}

/**
 * The exact projection of a point onto a hyperplane intersected with the box [lo, hi]^d, in L∞ or
 * L2, with reusable work space for dimension d.
 *
 * The hyperplane is { z : h(z) = 0 }, h(z) = c + ⟨w, z − point⟩ (c = h(point)). The displacement
 * moves each coordinate in the direction that brings h to 0, s_i = −sign(c·w_i), by at most its
 * room to the box, r_i (hi − point_i or point_i − lo). L∞: δ_i = s_i·min(λ, r_i); L2 (the KKT
 * solution): δ_i = s_i·min(λ|w_i|, r_i), i.e. |w_i|·min(λ, r_i/|w_i|). In both, h moves by
 * Σ U_i·min(λ, R_i) with (U, R) = (|w_i|, r_i) for L∞ and (w_i², r_i/|w_i|) for L2: an increasing
 * piecewise-linear function of λ, and the smallest λ where it reaches |c| is found by a three-way
 * partition search over the breakpoints R_i (expected linear time). When even the full room does
 * not reach |c| (the hyperplane misses the box) every coordinate moves to its bound, the box point
 * nearest to the hyperplane, as in the reference code. Coordinates with w_i = 0 do not move.
 */
export class HyperplaneProjector {
  private readonly R: Float64Array;
  private readonly U: Float64Array;

  constructor(d: number) {
    this.R = new Float64Array(d);
    this.U = new Float64Array(d);
  }

  /** Writes the displacement δ into `out` (length d) and returns it. */
  project(point: ArrayLike<number>, w: ArrayLike<number>, c: number, norm: Norm, lo: number, hi: number, out: Float64Array): Float64Array {
    const d = out.length;
    out.fill(0);
    if (c === 0 || !Number.isFinite(c)) return out;
    const need = Math.abs(c);
    const down = c > 0; // h must decrease: move against sign(w_i)
    const { R, U } = this;
    let m = 0;
    let total = 0;
    for (let i = 0; i < d; i++) {
      const wi = w[i];
      if (wi === 0) continue;
      const up = down ? wi < 0 : wi > 0; // this coordinate increases
      const room = Math.max(0, up ? hi - point[i] : point[i] - lo);
      if (room === 0) continue;
      const a = Math.abs(wi);
      total += a * room;
      if (norm === 'linf') {
        U[m] = a;
        R[m] = room;
      } else {
        U[m] = a * a;
        R[m] = room / a;
      }
      m++;
    }
    const full = total <= need;
    const lambda = full ? Infinity : breakpointSearch(R, U, m, need);
    for (let i = 0; i < d; i++) {
      const wi = w[i];
      if (wi === 0) continue;
      const up = down ? wi < 0 : wi > 0;
      const room = Math.max(0, up ? hi - point[i] : point[i] - lo);
      const step = Math.min(norm === 'linf' ? lambda : lambda * Math.abs(wi), room);
      out[i] = up ? step : -step;
    }
    return out;
  }
}

/**
 * The smallest λ ≥ 0 with Σ_{i<m} U_i·min(λ, R_i) = need, given U_i > 0, R_i > 0 and
 * 0 < need < Σ U_i·R_i. Reorders R and U. Quickselect-style: each round partitions the candidates
 * around a pivot breakpoint and keeps the side the solution lies on; `sat` sums U_i·R_i of the
 * entries known to be saturated (R_i < λ), `free` sums U_i of those known not to be (R_i ≥ λ).
 */
function breakpointSearch(R: Float64Array, U: Float64Array, m: number, need: number): number {
  let lo = 0;
  let hi = m;
  let sat = 0;
  let free = 0;
  while (lo < hi) {
    const a = R[lo],
      b = R[(lo + hi) >> 1],
      c = R[hi - 1];
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b; // median of three
    // Three-way partition of [lo, hi): [lo, lt) < pivot, [lt, gt) = pivot, [gt, hi) > pivot.
    let lt = lo,
      i = lo,
      gt = hi;
    let lessUR = 0,
      equalU = 0,
      greaterU = 0;
    while (i < gt) {
      const v = R[i];
      if (v < pivot) {
        lessUR += U[i] * v;
        swap(R, U, lt++, i++);
      } else if (v > pivot) {
        swap(R, U, i, --gt);
        greaterU += U[gt];
      } else {
        equalU += U[i++];
      }
    }
    if (sat + lessUR + (free + equalU + greaterU) * pivot >= need) {
      free += equalU + greaterU; // λ ≤ pivot
      hi = lt;
    } else {
      sat += lessUR + equalU * pivot; // λ > pivot
      lo = gt;
    }
  }
  return free > 0 ? (need - sat) / free : Infinity;
}

function swap(R: Float64Array, U: Float64Array, i: number, j: number): void {
  const r = R[i],
    u = U[i];
  R[i] = R[j];
  U[i] = U[j];
  R[j] = r;
  U[j] = u;
}
