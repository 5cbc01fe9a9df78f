/** Adversarial attacks on a `Classifier`: the individual attacks and the batch runner. */
export * from './types';
export { ATTACK_DEFAULTS, ATTACK_FUNCTIONS, ATTACK_NAMES, ATTACK_REGISTRY, ATTACKS, parseAttackList, type AttackName } from './registry';
export type { AttackSpec, PlanOption } from './spec';
export { fgsm } from './fgsm';
export type { GradientAttackOptions } from './fgsm';
export { bim, pgd, mifgsm } from './iterative';
export type { IterativeOptions, PgdOptions, MiFgsmOptions } from './iterative';
export { spsa } from './spsa';
export type { SpsaOptions } from './spsa';
export { imageLayout, squareAttack, squareSchedule } from './square';
export type { SquareOptions } from './square';
export { runAttack } from './run';
export type { AttackConfig, AttackDataset, AttackMetrics, RunAttackOptions } from './run';
export { fabT, FAB_T, FAB_DEFAULTS } from './fab';
export type { FabOptions } from './fab';
