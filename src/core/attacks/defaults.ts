/**
 * Names, references and default parameters of the attacks, as data: the attacks read their
 * defaults from here, and the CLI and docs show them from here.
 */
import type { AttackName, Norm } from './types';

export const ATTACK_NAMES: readonly AttackName[] = ['fgsm', 'bim', 'pgd', 'mifgsm', 'spsa', 'square'];

/**
 * Default parameters. `stepSizeFactor` f gives the step size f · eps / steps when no step size is
 * set: f = 2.5 lets an iterate cross the whole ball and back (Madry et al. 2018); MI-FGSM uses
 * eps / steps (Dong et al. 2018). Gradient attacks follow the cross-entropy loss ('ce') by default.
 */
export const ATTACK_DEFAULTS = {
  fgsm: { loss: 'ce' },
  bim: { steps: 10, stepSizeFactor: 2.5, loss: 'ce' },
  pgd: { steps: 20, stepSizeFactor: 2.5, restarts: 1, randomStart: true, loss: 'ce' },
  mifgsm: { steps: 10, stepSizeFactor: 1, momentum: 1.0, loss: 'ce' },
  /** queries: forward passes per sample; each step costs 2 · samplesPerStep + 1. */
  spsa: { queries: 5000, samplesPerStep: 32, delta: 0.01, lr: 0.01, randomStart: true },
  /** queries: forward passes per sample (the paper uses 10,000); pInit per norm as in the paper's code. */
  square: { queries: 5000, pInitLinf: 0.05, pInitL2: 0.1 },
} as const satisfies Record<AttackName, Record<string, number | boolean | string>>;

export interface AttackInfo {
  name: AttackName;
  title: string;
  reference: string;
  /** True when the attack needs only logits (no `lossGradient`). */
  gradientFree: boolean;
  norms: readonly Norm[];
}

export const ATTACKS: Readonly<Record<AttackName, AttackInfo>> = {
  fgsm: {
    name: 'fgsm',
    title: 'Fast Gradient Sign Method',
    reference: 'Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015',
    gradientFree: false,
    norms: ['linf', 'l2'],
  },
  bim: {
    name: 'bim',
    title: 'Basic Iterative Method (iterative FGSM)',
    reference: 'Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world", ICLR 2017 workshop',
    gradientFree: false,
    norms: ['linf', 'l2'],
  },
  pgd: {
    name: 'pgd',
    title: 'Projected Gradient Descent with random start',
    reference: 'Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018',
    gradientFree: false,
    norms: ['linf', 'l2'],
  },
  mifgsm: {
    name: 'mifgsm',
    title: 'Momentum Iterative FGSM',
    reference: 'Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018',
    gradientFree: false,
    norms: ['linf', 'l2'],
  },
  spsa: {
    name: 'spsa',
    title: 'SPSA (gradient-free)',
    reference: 'Uesato et al., "Adversarial Risk and the Dangers of Evaluating Against Weak Attacks", ICML 2018',
    gradientFree: true,
    norms: ['linf', 'l2'],
  },
  square: {
    name: 'square',
    title: 'Square Attack (gradient-free)',
    reference: 'Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via random search", ECCV 2020',
    gradientFree: true,
    norms: ['linf', 'l2'],
  },
};
