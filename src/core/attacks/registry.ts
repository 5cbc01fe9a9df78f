/**
 * The attacks, one line each. Everything that lists attacks (parsing, CLI help, pickers, the
 * experiment schema, the generated catalogue) reads this list; adding an attack is one file that
 * exports its AttackSpec plus one line here.
 */
import { APGD_CE, APGD_DLR, APGD_T } from './apgd';
import { FAB_T } from './fab';
import { FGSM } from './fgsm';
import { BIM, MIFGSM, PGD } from './iterative';
import type { AttackSpec } from './spec';
import { SPSA } from './spsa';
import { SQUARE } from './square';
import { UserError } from '../errors';
import { AUTOATTACK, STRENGTHS } from './strength';

export const ATTACK_REGISTRY = [FGSM, BIM, PGD, MIFGSM, APGD_CE, APGD_DLR, APGD_T, FAB_T, SPSA, SQUARE] as const;

export type AttackName = (typeof ATTACK_REGISTRY)[number]['name'];

export const ATTACK_NAMES: readonly AttackName[] = ATTACK_REGISTRY.map((a) => a.name);

export const ATTACKS = Object.fromEntries(ATTACK_REGISTRY.map((a) => [a.name, a])) as unknown as Readonly<Record<AttackName, AttackSpec<AttackName>>>;

/** Default parameters per attack, as documented. */
export const ATTACK_DEFAULTS = Object.fromEntries(ATTACK_REGISTRY.map((a) => [a.name, a.defaults])) as {
  readonly [A in (typeof ATTACK_REGISTRY)[number] as A['name']]: A['defaults'];
};

/** The attack functions by name. */
export const ATTACK_FUNCTIONS = Object.fromEntries(ATTACK_REGISTRY.map((a) => [a.name, a.run])) as Readonly<Record<AttackName, AttackSpec['run']>>;

/** Parses a comma- or space-separated list of attack names or aliases (case-insensitive, duplicates dropped). */
export function parseAttackList(text: string): AttackName[] {
  const valid = `Valid attacks: ${ATTACK_NAMES.join(', ')}, or autoattack (the standard ensemble).`;
  const out: AttackName[] = [];
  for (const raw of text.split(/[\s,]+/)) {
    if (!raw) continue;
    const word = raw.toLowerCase();
    if (word === AUTOATTACK) {
      // The standard ensemble (strength.ts resolves it before a run; here its names are checked).
      for (const n of STRENGTHS.standard.plan.names) if (!out.includes(n)) out.push(n);
      continue;
    }
    const spec = ATTACK_REGISTRY.find((a) => a.name === word || (a as AttackSpec).aliases?.includes(word));
    if (!spec) throw new UserError(`Unknown attack '${raw}'`, valid);
    if (!out.includes(spec.name)) out.push(spec.name);
  }
  if (out.length === 0) throw new UserError('No attack given', valid);
  return out;
}
