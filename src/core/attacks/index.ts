/** Adversarial attacks on a `Classifier`: the individual attacks and the batch runner. */
export * from './types';
export { ATTACK_DEFAULTS, ATTACK_NAMES, ATTACKS } from './defaults';
export type { AttackInfo } from './defaults';
export { fgsm } from './fgsm';
export type { GradientAttackOptions } from './fgsm';
export { bim, pgd, mifgsm } from './iterative';
export type { IterativeOptions, PgdOptions, MiFgsmOptions } from './iterative';
export { spsa } from './spsa';
export type { SpsaOptions } from './spsa';
export { imageLayout, squareAttack, squareSchedule } from './square';
export type { SquareOptions } from './square';
export { runAttack, parseAttackList, ATTACK_FUNCTIONS } from './run';
export type { AttackConfig, AttackDataset, AttackMetrics, RunAttackOptions } from './run';
