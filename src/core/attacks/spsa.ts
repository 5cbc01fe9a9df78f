/**
 * SPSA attack (Uesato et al. 2018), gradient-free: estimates the gradient of the margin from
 * logits alone with simultaneous perturbations and follows it with Adam, projecting onto the
 * eps-ball ∩ [lo, hi] after every step (the paper's threat model is linf; l2 projects onto the
 * l2 ball). Per step and sample, with N Rademacher vectors v_i ∈ {−1, 1}^d and the margin f:
 *
 *   ĝ = 1/N · Σ_i (f(x + δ v_i) − f(x − δ v_i)) / (2δ) · v_i          (Uesato et al., Alg. 1)
 *
 * Probes are clipped to the input range so the model only ever sees valid inputs. Each step costs
 * 2N forward passes plus one to evaluate the new iterate; a sample stops as soon as it is fooled
 * or when the next step would exceed its query budget.
 */
import type { Rng } from '../random';
import { defineAttack } from './spec';
import {
  BestTracker,
  checkInteger,
  checkPositive,
  clamp,
  gatherRows,
  keptRows,
  logitsChunked,
  margin,
  project,
  randomStart,
  resolveContext,
  throwIfAborted,
} from './common';
import type { AttackOptions, AttackOutcome, Classifier } from './types';

export interface SpsaOptions extends AttackOptions {
  /** Forward passes per sample, including the evaluation of the start (default 5000). */
  queries?: number;
  /** Rademacher directions N per step, each probed at ±δ (default 32). */
  samplesPerStep?: number;
  /** Finite-difference size δ (default 0.01). */
  delta?: number;
  /** Adam learning rate (default 0.01). */
  lr?: number;
  /** Start from a uniform random point of the ball, as in cleverhans' implementation (default true). */
  randomStart?: boolean;
  /** Largest forward batch in rows (bounds memory); default min(1024, 2^24 / d), at least 1. */
  maxBatchRows?: number;
}

/** queries: forward passes per sample; each step costs 2 · samplesPerStep + 1. */
const DEFAULTS = { queries: 5000, samplesPerStep: 32, delta: 0.01, lr: 0.01, randomStart: true } as const;

export const SPSA = defineAttack({
  name: 'spsa',
  title: 'SPSA (gradient-free)',
  reference: 'Uesato et al., "Adversarial Risk and the Dangers of Evaluating Against Weak Attacks", ICML 2018',
  gradientFree: true,
  norms: ['linf', 'l2'],
  uses: ['queries', 'randomStart', 'targeted'],
  defaults: DEFAULTS,
  run: (c, x, labels, o, rng) => spsa(c, x, labels, o, rng),
});

// Adam's usual constants (Kingma & Ba 2015).
const BETA1 = 0.9;
const BETA2 = 0.999;
const ADAM_EPS = 1e-8;

export async function spsa(classifier: Classifier, x: Float32Array, labels: Int32Array, options: SpsaOptions, rng?: Rng): Promise<AttackOutcome> {
  const ctx = resolveContext(classifier, x, labels, options, rng);
  const defaults = DEFAULTS;
  const budget = checkInteger(options.queries ?? defaults.queries, 'queries', 1);
  // At least one step must fit the budget: 1 (start) + 2N + 1 (new iterate).
  const samples = Math.min(checkInteger(options.samplesPerStep ?? defaults.samplesPerStep, 'samples per step', 1), Math.max(1, Math.floor((budget - 2) / 2)));
  const delta = checkPositive(options.delta ?? defaults.delta, 'delta');
  const lr = checkPositive(options.lr ?? defaults.lr, 'learning rate');
  const { d, lo, hi } = ctx;
  const maxRows = checkInteger(options.maxBatchRows ?? Math.max(1, Math.min(1024, Math.floor(2 ** 24 / d))), 'max batch rows', 1);
  const targetOf = ctx.targets ?? ctx.labels;
  const targeted = !!ctx.targets;
  const stepCost = 2 * samples + 1;

  const tracker = new BestTracker(ctx, x);
  let idx = tracker.remaining();
  let x0: Float32Array = gatherRows(x, idx, d);
  let xa: Float32Array = Float32Array.from(x0);
  if (options.randomStart ?? defaults.randomStart) randomStart(xa, idx, ctx);
  tracker.countQueries(idx);
  let { done } = tracker.observe(idx, xa, await logitsChunked(classifier, xa, idx.length, ctx, maxRows));
  let m1: Float32Array = new Float32Array(xa.length);
  let m2: Float32Array = new Float32Array(xa.length);
  let used = 1;

  for (let t = 1; ; t++) {
    // Drop fooled samples; stop when none is left or the budget has no room for another step.
    const keep = keptRows(Array.from(done, (f) => !f));
    if (keep.length < idx.length) {
      idx = gatherRows(idx, keep, 1);
      [x0, xa, m1, m2] = [x0, xa, m1, m2].map((a) => gatherRows(a, keep, d));
    }
    if (idx.length === 0 || used + stepCost > budget) break;
    throwIfAborted(ctx.signal);
    const m = idx.length;

    // Samples in groups whose probes fit one forward batch of ≤ maxRows rows (bounds memory).
    const group = Math.max(1, Math.floor(maxRows / (2 * samples)));
    const c1 = 1 - BETA1 ** t; // Adam bias corrections
    const c2 = 1 - BETA2 ** t;
    for (let r0 = 0; r0 < m; r0 += group) {
      const rows = Math.min(group, m - r0);
      // Probe rows: for sample r and direction i, 2i = x + δv_i and 2i + 1 = x − δv_i.
      const v = new Float32Array(rows * samples * d);
      const probes = new Float32Array(rows * 2 * samples * d);
      for (let r = 0; r < rows; r++) {
        const rs = ctx.stream(idx[r0 + r]);
        const xo = (r0 + r) * d;
        for (let i = 0; i < samples; i++) {
          const vo = (r * samples + i) * d;
          rs.signs(v.subarray(vo, vo + d));
          const po = (r * samples + i) * 2 * d;
          for (let c = 0; c < d; c++) {
            probes[po + c] = clamp(xa[xo + c] + delta * v[vo + c], lo, hi);
            probes[po + d + c] = clamp(xa[xo + c] - delta * v[vo + c], lo, hi);
          }
        }
      }
      const z = await logitsChunked(classifier, probes, rows * 2 * samples, ctx, maxRows);
      // Gradient estimate of the margin, then an Adam ascent step.
      for (let r = 0; r < rows; r++) {
        const y = targetOf[idx[r0 + r]];
        const g = new Float64Array(d);
        for (let i = 0; i < samples; i++) {
          const row = (r * samples + i) * 2;
          const diff = (margin(z, row, ctx.k, y, targeted) - margin(z, row + 1, ctx.k, y, targeted)) / (2 * delta * samples);
          const vo = (r * samples + i) * d;
          for (let c = 0; c < d; c++) g[c] += diff * v[vo + c];
        }
        const xo = (r0 + r) * d;
        for (let c = 0; c < d; c++) {
          const o = xo + c;
          m1[o] = BETA1 * m1[o] + (1 - BETA1) * g[c];
          m2[o] = BETA2 * m2[o] + (1 - BETA2) * g[c] * g[c];
          xa[o] = xa[o] + (lr * (m1[o] / c1)) / (Math.sqrt(m2[o] / c2) + ADAM_EPS);
        }
      }
      throwIfAborted(ctx.signal);
    }
    tracker.countQueries(idx, 2 * samples);
    project(xa, x0, m, ctx);

    throwIfAborted(ctx.signal);
    tracker.countQueries(idx);
    ({ done } = tracker.observe(idx, xa, await logitsChunked(classifier, xa, m, ctx, maxRows)));
    used += stepCost;
  }
  return tracker.result();
}
