/**
 * The defenses, one line each. The CLI's flags, the experiment schema, the wizard and the fit all
 * read this list; adding a defense is one folder that exports its DefenseSpec plus one line here.
 */
import { UserError } from '../errors';
import { DAE } from './dae/spec';
import { ISOMETRIC } from './isometric/spec';
import { LESCI } from './lesci/spec';
import { RETRIEVAL } from './retrieval/spec';
import type { DefenseSpec } from './spec';

export const DEFENSE_REGISTRY = [LESCI, DAE, RETRIEVAL, ISOMETRIC] as const;

export type DefenseKind = (typeof DEFENSE_REGISTRY)[number]['kind'];

export const DEFENSE_KINDS: readonly DefenseKind[] = DEFENSE_REGISTRY.map((d) => d.kind);

export function defenseSpec(kind: string): DefenseSpec {
  const spec = DEFENSE_REGISTRY.find((d) => d.kind === kind);
  if (!spec) throw new UserError(`Unknown defense '${kind}'.`, `Choose one of ${DEFENSE_KINDS.join(', ')}.`);
  return spec;
}
