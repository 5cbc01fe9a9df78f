/**
 * What an attack declares about itself. Each attack file exports one AttackSpec per attack, and
 * attacks/registry.ts lists them: CLI help, the extension's pickers, the experiment JSON schema and
 * the generated catalogue (src/protocol/catalogue.ts) are all derived from that list.
 */
import type { Rng } from '../random';
import type { AttackOptions, AttackOutcome, Classifier, Norm } from './types';

/** The options of an experiment's attack plan (AttackPlan) that an attack can read. */
export type PlanOption = 'steps' | 'stepSize' | 'restarts' | 'randomStart' | 'queries' | 'loss' | 'targeted';

export interface AttackSpec<Name extends string = string> {
  name: Name;
  /** Other names accepted on the command line (e.g. 'i-fgsm'). */
  aliases?: readonly string[];
  title: string;
  /** The paper, as a citation. */
  reference: string;
  /** True when the attack needs only logits (no `lossGradient`). */
  gradientFree: boolean;
  norms: readonly Norm[];
  /** The fewest classes the attack works with (APGD-T's targeted DLR needs 4); default 2. */
  minClasses?: number;
  /** The plan options this attack reads; the others do not change what it does. */
  uses: readonly PlanOption[];
  /** Default parameters, as documented (shown by the CLI help and the extension). */
  defaults: Readonly<Record<string, number | boolean | string>>;
  run(classifier: Classifier, x: Float32Array, labels: Int32Array, options: AttackOptions & Record<string, unknown>, rng?: Rng): Promise<AttackOutcome>;
}

/** Keeps the literal name type, so the registry can derive the union of attack names. */
export function defineAttack<const Name extends string, const Defaults extends AttackSpec['defaults']>(
  spec: AttackSpec<Name> & { defaults: Defaults },
): AttackSpec<Name> & { defaults: Defaults } {
  return spec;
}
