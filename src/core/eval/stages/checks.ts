/**
 * The checks stage: runs the checks of ../checks.ts on a classifier that was attacked, on a few
 * samples, with the attacks' own machinery. Cheap next to the attacks themselves.
 */
import { runAttack } from '../../attacks/run';
import type { Classifier } from '../../attacks/types';
import type { AttackResult, CheckResult } from '../../../protocol/run-result';
import { convergenceChecks, determinismCheck, flatCurveChecks, unboundedCheck, weakerWhiteboxChecks, zeroGradientCheck } from '../checks';
import type { PreparedData } from '../data';
import { ATTACKS, type AttackName } from '../../attacks/registry';

/** Samples the gradient and determinism checks look at. */
const CHECK_SAMPLES = 100;
/** Samples and steps of the unbounded attack. */
const UNBOUNDED_SAMPLES = 50;
const UNBOUNDED_STEPS = 20;

const gradientFree = (name: string) => ATTACKS[name as AttackName]?.gradientFree ?? false;

/** Checks that need only the attack results. */
export function resultChecks(
  entries: readonly AttackResult[],
  target: CheckResult['target'],
  samples: { count: number; cleanAccuracy: number },
): CheckResult[] {
  return [
    ...weakerWhiteboxChecks(entries, gradientFree, target),
    ...flatCurveChecks(entries, target),
    ...convergenceChecks(entries, samples.count, samples.cleanAccuracy, target),
  ];
}

/**
 * Checks on one gradient threat model's classifier: the masked-gradient check (for the true
 * gradient: the undefended model's, or the defended model's 'direct' one) and the unbounded PGD.
 */
export async function classifierChecks(
  classifier: Classifier,
  data: PreparedData,
  target: CheckResult['target'],
  threat: string,
  options: { seed: number; batchSize: number; trueGradient: boolean; signal?: AbortSignal },
): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  if (!classifier.lossGradient) return out;
  const d = data.x.length / Math.max(1, data.count);
  if (options.trueGradient) {
    const zero = await zeroGradientCheck(classifier, data.x, data.labels, Math.min(CHECK_SAMPLES, data.count), options.batchSize, target, threat);
    if (zero) out.push(zero);
  }
  const n = Math.min(UNBOUNDED_SAMPLES, data.count);
  const m = await runAttack(
    classifier,
    { x: data.x.subarray(0, n * d), labels: data.labels.subarray(0, n), count: n },
    { attack: 'pgd', norm: 'linf', eps: 1, steps: UNBOUNDED_STEPS },
    { batchSize: options.batchSize, seed: options.seed, signal: options.signal },
  );
  out.push(unboundedCheck(m.accuracy, `PGD-${UNBOUNDED_STEPS}`, threat, n, target));
  return out;
}

export async function forwardChecks(classifier: Classifier, data: PreparedData, target: CheckResult['target'], batchSize: number): Promise<CheckResult> {
  return determinismCheck(classifier, data.x, Math.min(CHECK_SAMPLES, data.count), batchSize, target);
}
