/** The registry: op type → gradient rule, gathered from the op-family modules. */
import type { GradRule } from '../types';
import { convRules } from './conv';
import { elementwiseRules } from './elementwise';
import { linearRules } from './linear';
import { normRules } from './norm';
import { poolRules } from './pool';
import { reduceRules } from './reduce';
import { resizeRules } from './resize';
import { shapeRules } from './shape';

export const GRADIENT_RULES: ReadonlyMap<string, GradRule> = new Map(
  Object.entries({ ...elementwiseRules, ...linearRules, ...convRules, ...poolRules, ...normRules, ...reduceRules, ...shapeRules, ...resizeRules }),
);

/** The op types that have a gradient rule, sorted. */
export function supportedGradientOps(): string[] {
  return [...GRADIENT_RULES.keys()].sort();
}
