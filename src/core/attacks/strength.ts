/**
 * Strength presets: which attacks run and with what budget when the user asks for a level of
 * scrutiny instead of naming attacks. `standard` is the AutoAttack ensemble (Croce & Hein 2020) as
 * RobustBench reports it; under a defense the adaptive threat model runs the same gradient attacks
 * against the defense's surrogate. What a plan sets itself overrides its preset.
 */
import { UserError } from '../errors';
import type { AttackPlan } from '../../protocol/experiment';
import type { CatalogueStrength } from '../../protocol/params';

type PresetPlan = Omit<AttackPlan, 'eps' | 'norm' | 'strength'>;

export const STRENGTHS = {
  quick: {
    description: 'FGSM, PGD-10 and Square Attack with 300 queries: a first look in about a minute on the demo',
    plan: { names: ['fgsm', 'pgd', 'square'], steps: 10, queries: 300 },
  },
  standard: {
    description:
      'The AutoAttack ensemble: APGD-CE, APGD-T over the 9 most likely wrong classes, FAB-T (100 iterations each) and Square Attack with 5,000 queries, each on the samples still robust',
    plan: { names: ['apgd-ce', 'apgd-t', 'fab-t', 'square'] as const, steps: 100, queries: 5000, sequential: true },
  },
  thorough: {
    description: 'The ensemble with 5 restarts, APGD-DLR and PGD-100 added, and Square Attack with 10,000 queries',
    plan: { names: ['apgd-ce', 'apgd-dlr', 'apgd-t', 'fab-t', 'pgd', 'square'], steps: 100, restarts: 5, queries: 10000, sequential: true },
  },
} as const satisfies Record<string, { description: string; plan: PresetPlan }>;

export type Strength = keyof typeof STRENGTHS;

export const STRENGTH_CATALOGUE: readonly CatalogueStrength[] = Object.entries(STRENGTHS).map(([name, s]) => ({ name, description: s.description }));

/** `--attack autoattack`: the standard ensemble by name, run sequentially with its budgets. */
export const AUTOATTACK = 'autoattack';

/**
 * The plan with its preset filled in (the plan's own names and budgets win over the preset's), and
 * the name 'autoattack' expanded into the standard ensemble.
 */
export function resolveStrength(plan: AttackPlan): AttackPlan {
  if (plan.names.some((n) => n.toLowerCase() === AUTOATTACK)) {
    const names = plan.names.flatMap((n) => (n.toLowerCase() === AUTOATTACK ? [...STRENGTHS.standard.plan.names] : [n]));
    return resolveStrength({ ...plan, names: [...new Set(names)], sequential: plan.sequential ?? true });
  }
  if (plan.strength === undefined) return plan;
  const preset = (STRENGTHS as Record<string, { plan: PresetPlan }>)[plan.strength];
  if (!preset) throw new UserError(`Unknown strength '${plan.strength}'.`, `Choose one of ${Object.keys(STRENGTHS).join(', ')}.`);
  const own = Object.fromEntries(Object.entries(plan).filter(([k, v]) => v !== undefined && !(k === 'names' && Array.isArray(v) && v.length === 0)));
  return { ...preset.plan, ...own, names: own.names ? (own.names as string[]) : [...preset.plan.names] } as AttackPlan;
}
