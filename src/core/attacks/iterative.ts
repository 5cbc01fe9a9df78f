/**
 * Iterative gradient attacks sharing one loop: BIM, PGD and MI-FGSM.
 *
 *   BIM (Kurakin et al. 2017):  x_{t+1} = Π(x_t + α · s(∇ₓL(x_t)))
 *   PGD (Madry et al. 2018):    the same from a uniform random point of the ball, with restarts
 *   MI-FGSM (Dong et al. 2018): g_{t+1} = μ · g_t + ∇ₓL(x_t) / ‖∇ₓL(x_t)‖₁   (eq. 6)
 *                               x_{t+1} = Π(x_t + α · s(g_{t+1}))              (eq. 7)
 *
 * s is the steepest-ascent direction of the norm (sign for linf, unit l2 vector for l2) and Π the
 * projection onto the eps-ball ∩ [lo, hi] after every step. Every iterate is evaluated; per sample
 * the first adversarial one is kept and the sample stops (so later restarts and steps cost nothing
 * for it), otherwise the iterate with the highest margin over all steps and restarts.
 */
import type { Rng } from '../random';
import {
  ascentStep,
  BestTracker,
  checkInteger,
  checkPositive,
  gatherRows,
  keptRows,
  logitsChunked,
  lossKind,
  objectiveGradient,
  objectiveLabels,
  project,
  randomStart,
  requireGradient,
  resolveContext,
  throwIfAborted,
} from './common';
import type { GradientAttackOptions } from './fgsm';
import { defineAttack } from './spec';
import type { AttackOutcome, Classifier } from './types';

export interface IterativeOptions extends GradientAttackOptions {
  /** Gradient steps per restart. */
  steps?: number;
  /** Step size α; default stepSizeFactor · eps / steps (see DEFAULTS). */
  stepSize?: number;
}

export interface PgdOptions extends IterativeOptions {
  /** Independent runs; later runs attack only the samples not fooled yet. Default 1. */
  restarts?: number;
  /** Start from a uniform random point of the ball (default true). */
  randomStart?: boolean;
}

export interface MiFgsmOptions extends IterativeOptions {
  /** Decay factor μ of the accumulated gradient (default 1.0). */
  momentum?: number;
}

/**
 * Default parameters. `stepSizeFactor` f gives the step size f · eps / steps when no step size is
 * set: f = 2.5 lets an iterate cross the whole ball and back (Madry et al. 2018); MI-FGSM uses
 * eps / steps (Dong et al. 2018). Gradient attacks follow the cross-entropy loss ('ce') by default.
 */
const DEFAULTS = {
  bim: { steps: 10, stepSizeFactor: 2.5, loss: 'ce' },
  pgd: { steps: 20, stepSizeFactor: 2.5, restarts: 1, randomStart: true, loss: 'ce' },
  mifgsm: { steps: 10, stepSizeFactor: 1, momentum: 1.0, loss: 'ce' },
} as const;

export const BIM = defineAttack({
  name: 'bim',
  aliases: ['i-fgsm', 'ifgsm'],
  title: 'Basic Iterative Method (iterative FGSM)',
  reference: 'Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world", ICLR 2017 workshop',
  gradientFree: false,
  norms: ['linf', 'l2'],
  uses: ['steps', 'stepSize', 'loss', 'targeted'],
  defaults: DEFAULTS.bim,
  run: (c, x, labels, o, rng) => bim(c, x, labels, o, rng),
});

export const PGD = defineAttack({
  name: 'pgd',
  title: 'Projected Gradient Descent with random start',
  reference: 'Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018',
  gradientFree: false,
  norms: ['linf', 'l2'],
  uses: ['steps', 'stepSize', 'restarts', 'randomStart', 'loss', 'targeted'],
  defaults: DEFAULTS.pgd,
  run: (c, x, labels, o, rng) => pgd(c, x, labels, o, rng),
});

export const MIFGSM = defineAttack({
  name: 'mifgsm',
  aliases: ['mi-fgsm'],
  title: 'Momentum Iterative FGSM',
  reference: 'Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018',
  gradientFree: false,
  norms: ['linf', 'l2'],
  uses: ['steps', 'stepSize', 'loss', 'targeted'],
  defaults: DEFAULTS.mifgsm,
  run: (c, x, labels, o, rng) => mifgsm(c, x, labels, o, rng),
});

const TITLES = { bim: BIM.title, pgd: PGD.title, mifgsm: MIFGSM.title };

interface Plan {
  steps: number;
  stepSize: number;
  restarts: number;
  randomStart: boolean;
  momentum: number | undefined;
}

function plan(options: IterativeOptions, defaults: { steps: number; stepSizeFactor: number }, extra: Omit<Plan, 'steps' | 'stepSize'>): Plan {
  const steps = checkInteger(options.steps ?? defaults.steps, 'steps', 1);
  const stepSize = checkPositive(options.stepSize ?? (defaults.stepSizeFactor * options.eps) / steps, 'step size', true);
  return { steps, stepSize, ...extra };
}

/** Basic Iterative Method: PGD without random start, one run. Default 10 steps of 2.5 · eps / steps. */
export function bim(classifier: Classifier, x: Float32Array, labels: Int32Array, options: IterativeOptions, rng?: Rng): Promise<AttackOutcome> {
  const p = plan(options, DEFAULTS.bim, { restarts: 1, randomStart: false, momentum: undefined });
  return iterate('bim', classifier, x, labels, options, rng, p);
}

/** PGD with random start and restarts. Default 20 steps of 2.5 · eps / steps, 1 restart. */
export function pgd(classifier: Classifier, x: Float32Array, labels: Int32Array, options: PgdOptions, rng?: Rng): Promise<AttackOutcome> {
  const d = DEFAULTS.pgd;
  const p = plan(options, d, {
    restarts: checkInteger(options.restarts ?? d.restarts, 'restarts', 1),
    randomStart: options.randomStart ?? d.randomStart,
    momentum: undefined,
  });
  return iterate('pgd', classifier, x, labels, options, rng, p);
}

/** MI-FGSM. Default 10 steps of eps / steps, μ = 1.0, no random start. */
export function mifgsm(classifier: Classifier, x: Float32Array, labels: Int32Array, options: MiFgsmOptions, rng?: Rng): Promise<AttackOutcome> {
  const d = DEFAULTS.mifgsm;
  const p = plan(options, d, {
    restarts: 1,
    randomStart: false,
    momentum: checkPositive(options.momentum ?? d.momentum, 'momentum', true),
  });
  return iterate('mifgsm', classifier, x, labels, options, rng, p);
}

async function iterate(
  attack: 'bim' | 'pgd' | 'mifgsm',
  classifier: Classifier,
  x: Float32Array,
  labels: Int32Array,
  options: GradientAttackOptions,
  rng: Rng | undefined,
  p: Plan,
): Promise<AttackOutcome> {
  const ctx = resolveContext(classifier, x, labels, options, rng);
  const gradient = requireGradient(classifier, TITLES[attack]);
  const loss = options.loss ?? DEFAULTS[attack].loss;
  const { d } = ctx;
  const tracker = new BestTracker(ctx, x);
  // Sign steps without momentum can run inside the runtime when the classifier offers it.
  const fusedStep = ctx.norm === 'linf' && p.momentum === undefined ? classifier.linfStep?.bind(classifier) : undefined;

  for (let restart = 0; restart < p.restarts; restart++) {
    // Active rows: sample ids `idx`, clean rows x0, iterates xa, momentum g.
    let idx = tracker.remaining();
    if (idx.length === 0) break;
    let x0 = gatherRows(x, idx, d);
    let xa = Float32Array.from(x0);
    if (p.randomStart) randomStart(xa, idx, ctx);
    let g = p.momentum === undefined ? undefined : new Float32Array(xa.length);

    tracker.steps = p.steps;
    for (let t = 0; idx.length > 0; t++) {
      throwIfAborted(ctx.signal);
      tracker.step = t;
      if (t === p.steps) {
        // The last iterate has no gradient step after it: evaluate it with a forward pass.
        tracker.countQueries(idx);
        tracker.observe(idx, xa, await logitsChunked(classifier, xa, idx.length, ctx));
        break;
      }
      let done: Uint8Array;
      if (fusedStep) {
        // One runtime call: logits at x_t and x_{t+1}; targeted attacks descend the target's loss.
        const alpha = ctx.targets ? -p.stepSize : p.stepSize;
        const { next, logits } = await fusedStep(xa, x0, idx.length, objectiveLabels(idx, ctx), lossKind(loss), {
          alpha,
          eps: ctx.eps,
          range: [ctx.lo, ctx.hi],
        });
        tracker.countGradients(idx);
        done = tracker.observe(idx, xa, logits).done;
        xa = next.slice();
      } else {
        const { dir, logits } = await objectiveGradient(gradient, xa, idx, loss, ctx);
        tracker.countGradients(idx);
        done = tracker.observe(idx, xa, logits).done;
        let step = dir;
        if (g) {
          accumulateMomentum(g, dir, p.momentum!, d);
          step = g;
        }
        ascentStep(xa, step, idx.length, p.stepSize, ctx);
        project(xa, x0, idx.length, ctx);
      }
      // Samples fooled by x_t stop here (early stop); the others continue.
      if (done.includes(1)) {
        const keep = keptRows(Array.from(done, (f) => !f));
        idx = gatherRows(idx, keep, 1);
        x0 = gatherRows(x0, keep, d);
        xa = gatherRows(xa, keep, d);
        if (g) g = gatherRows(g, keep, d);
      }
    }
  }
  return tracker.result();
}

/** g ← μ · g + grad / ‖grad‖₁ per row (MI-FGSM eq. 6); rows with a zero gradient add nothing. */
function accumulateMomentum(g: Float32Array, grad: Float32Array, mu: number, d: number): void {
  for (let o = 0; o < g.length; o += d) {
    let l1 = 0;
    for (let i = o; i < o + d; i++) l1 += Math.abs(grad[i]);
    const f = l1 > 0 ? 1 / l1 : 0;
    for (let i = o; i < o + d; i++) g[i] = mu * g[i] + f * grad[i];
  }
}
