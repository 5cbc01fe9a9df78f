/**
 * Fast Gradient Sign Method (Goodfellow et al. 2015): one step of size eps along the steepest
 * ascent direction of the loss in the attack's norm,
 *   linf: x' = clip(x + eps · sign(∇ₓL))            (Goodfellow et al., eq. 3)
 *   l2:   x' = clip(x + eps · ∇ₓL / ‖∇ₓL‖₂)          (the "fast gradient method")
 * Targeted: the step descends the loss at the target label instead.
 */
import type { Rng } from '../random';
import {
  allRows,
  ascentStep,
  objectiveGradient,
  perturbationNorms,
  project,
  requireGradient,
  resolveContext,
  succeeded,
  throwIfAborted,
  argmaxRow,
  logitsChunked,
} from './common';
import { defineAttack } from './spec';
import type { AttackLoss, AttackOptions, AttackOutcome, Classifier } from './types';

export interface GradientAttackOptions extends AttackOptions {
  /** Loss whose gradient drives the attack: cross-entropy (default) or the CW margin. */
  loss?: AttackLoss;
}

/** Gradient attacks follow the cross-entropy loss ('ce') by default. */
const DEFAULTS = { loss: 'ce' } as const;

export const FGSM = defineAttack({
  name: 'fgsm',
  title: 'Fast Gradient Sign Method',
  reference: 'Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015',
  gradientFree: false,
  norms: ['linf', 'l2'],
  uses: ['loss', 'targeted'],
  defaults: DEFAULTS,
  run: (c, x, labels, o, rng) => fgsm(c, x, labels, o, rng),
});

export async function fgsm(classifier: Classifier, x: Float32Array, labels: Int32Array, options: GradientAttackOptions, rng?: Rng): Promise<AttackOutcome> {
  const ctx = resolveContext(classifier, x, labels, options, rng);
  const gradient = requireGradient(classifier, FGSM.title);
  throwIfAborted(ctx.signal);
  const { n, d, k } = ctx;
  const all = allRows(n);
  const { dir } = await objectiveGradient(gradient, x, all, options.loss ?? DEFAULTS.loss, ctx);
  const xa = Float32Array.from(x);
  ascentStep(xa, dir, n, ctx.eps, ctx);
  project(xa, x, n, ctx); // clip to the range (and guard the ball against rounding)
  throwIfAborted(ctx.signal);
  const logits = await logitsChunked(classifier, xa, n, ctx);
  const predictions = new Int32Array(n);
  const fooled = new Uint8Array(n);
  for (let j = 0; j < n; j++) {
    predictions[j] = argmaxRow(logits, j, k);
    fooled[j] = succeeded(ctx, j, predictions[j]) ? 1 : 0;
  }
  const { linf, l2 } = perturbationNorms(xa, x, n, d);
  return {
    x: xa,
    fooled,
    predictions,
    linf,
    l2,
    gradientEvaluations: new Int32Array(n).fill(1),
    queries: new Int32Array(n).fill(1),
  };
}
