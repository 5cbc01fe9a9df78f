/**
 * Checks that catch an evaluation that failed rather than a defense that held (Athalye et al.
 * 2018; Carlini et al. 2019, "On evaluating adversarial robustness"; AutoAttack's flags). Each
 * check that fires is recorded in the RunResult and shown as a warning; a fired check on the
 * defended model turns its verdict into "inconclusive".
 *
 * - zero-gradient: the input gradient is exactly zero or non-finite for a share of samples (a
 *   masked gradient: gradient attacks cannot move, which says nothing about robustness);
 * - weaker-whitebox: a gradient-free or transfer attack beats every white-box gradient attack at
 *   some eps (the white-box attacks did not find what exists);
 * - flat-curve: an attack's robust accuracy does not fall at all while eps grows;
 * - unbounded: an attack whose ball covers the whole input range leaves samples correctly
 *   classified (any image is reachable, so a real attack must reach ~0%);
 * - nondeterministic: two forward passes of the same inputs disagree (randomness in the model
 *   needs expectation-over-transformation attacks, which did not run);
 * - not-converged: an iterative attack still broke many samples in the last fifth of its steps
 *   (its loss was still moving: more steps or restarts would likely break more).
 */
import type { Classifier, LossKind } from '../attacks/types';
import { argmaxRows } from '../tensor';
import type { AttackResult, CheckResult } from '../../protocol/run-result';

/** Share of samples with a zero or non-finite gradient above which the zero-gradient check fires. */
export const ZERO_GRADIENT_SHARE = 0.05;
/** Points by which a gradient-free/transfer attack must beat the white-box ones to fire. */
export const WEAKER_WHITEBOX_MARGIN = 0.01;
/** Robust accuracy an unbounded attack may leave before the check fires. */
export const UNBOUNDED_MAX_ACCURACY = 0.05;

type Target = CheckResult['target'];

/** `fn` over the first `count` rows in chunks of at most `batchSize`, results concatenated. */
async function chunked(count: number, batchSize: number, fn: (start: number, n: number) => Promise<Float32Array>): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for (let start = 0; start < count; start += batchSize) parts.push(await fn(start, Math.min(batchSize, count - start)));
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Gradient of the CE loss at clean inputs: which samples get an all-zero or non-finite gradient. */
export async function zeroGradientCheck(
  classifier: Classifier,
  x: Float32Array,
  labels: Int32Array,
  count: number,
  batchSize: number,
  target: Target,
  threat: string,
  loss: LossKind = 'ce-sum',
): Promise<CheckResult | undefined> {
  const lossGradient = classifier.lossGradient?.bind(classifier);
  if (!lossGradient || count === 0) return undefined;
  const d = classifier.sampleDims.reduce((a, b) => a * b, 1);
  const grad = await chunked(count, batchSize, async (start, n) =>
    Float32Array.from((await lossGradient(x.subarray(start * d, (start + n) * d), n, labels.subarray(start, start + n), loss)).grad),
  );
  let zero = 0,
    nonFinite = 0;
  for (let i = 0; i < count; i++) {
    let allZero = true,
      finite = true;
    for (let j = i * d; j < (i + 1) * d; j++) {
      const g = grad[j];
      if (!Number.isFinite(g)) finite = false;
      else if (g !== 0) allZero = false;
    }
    if (!finite) nonFinite++;
    else if (allZero) zero++;
  }
  const share = (zero + nonFinite) / count;
  return {
    id: 'zero-gradient',
    target,
    threat,
    fired: share > ZERO_GRADIENT_SHARE,
    value: share,
    message: `${zero} of ${count} samples have an exactly zero input gradient${nonFinite ? ` and ${nonFinite} a non-finite one` : ''} under ${threat}${share > ZERO_GRADIENT_SHARE ? ': the gradient is masked, so gradient attacks under this threat model cannot measure robustness' : ''}.`,
  };
}

/** Two forward passes of the same inputs must agree to float rounding. */
export async function determinismCheck(classifier: Classifier, x: Float32Array, count: number, batchSize: number, target: Target): Promise<CheckResult> {
  const d = classifier.sampleDims.reduce((a, b) => a * b, 1);
  const pass = () =>
    chunked(count, batchSize, async (start, n) => Float32Array.from(await classifier.logits(Float32Array.from(x.subarray(start * d, (start + n) * d)), n)));
  const a = await pass();
  const b = await pass();
  let maxDiff = 0,
    scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  const flips = argmaxRows(a, classifier.numClasses).filter((p, i) => p !== argmaxRows(b, classifier.numClasses)[i]).length;
  const fired = maxDiff > 1e-4 * scale;
  return {
    id: 'nondeterministic',
    target,
    threat: '',
    fired,
    value: maxDiff / scale,
    message: fired
      ? `Two forward passes of the same ${count} inputs differ (relative ${(maxDiff / scale).toExponential(2)}, ${flips} predictions change): the model is randomised, and attacks would need expectation over its randomness.`
      : `Forward passes are deterministic (relative difference ${(maxDiff / scale).toExponential(2)}).`,
  };
}

/** The robust accuracy an attack reaches when its ball covers the whole input range. */
export function unboundedCheck(accuracy: number, attack: string, threat: string, samples: number, target: Target): CheckResult {
  const fired = accuracy > UNBOUNDED_MAX_ACCURACY;
  return {
    id: 'unbounded',
    target,
    threat,
    fired,
    value: accuracy,
    message: `${attack} under ${threat} with eps covering the whole input range leaves ${(100 * accuracy).toFixed(1)}% of ${samples} samples correct${fired ? ': an attack that can reach any input should leave about 0%, so this attack is not working on this model' : ''}.`,
  };
}

const isGradientFreeOrTransfer = (a: AttackResult, gradientFree: (name: string) => boolean) => gradientFree(a.attack) || a.threat === 'transfer';

/** Per eps: does a gradient-free or transfer attack beat every white-box gradient attack? */
export function weakerWhiteboxChecks(entries: readonly AttackResult[], gradientFree: (name: string) => boolean, target: Target): CheckResult[] {
  const out: CheckResult[] = [];
  for (const eps of [...new Set(entries.map((a) => a.eps))].filter((e) => e > 0)) {
    const at = entries.filter((a) => a.eps === eps);
    const blackBox = at.filter((a) => isGradientFreeOrTransfer(a, gradientFree));
    const whiteBox = at.filter((a) => !isGradientFreeOrTransfer(a, gradientFree));
    if (!blackBox.length || !whiteBox.length) continue;
    const bestBlack = blackBox.reduce((w, a) => (a.accuracy < w.accuracy ? a : w));
    const bestWhite = whiteBox.reduce((w, a) => (a.accuracy < w.accuracy ? a : w));
    if (bestBlack.accuracy < bestWhite.accuracy - WEAKER_WHITEBOX_MARGIN) {
      out.push({
        id: 'weaker-whitebox',
        target,
        threat: bestBlack.threat,
        eps,
        fired: true,
        value: bestWhite.accuracy - bestBlack.accuracy,
        message: `At eps ${eps}, ${bestBlack.attack} (${bestBlack.threat}) leaves ${(100 * bestBlack.accuracy).toFixed(1)}%, below the best white-box attack ${bestWhite.attack} (${bestWhite.threat}) at ${(100 * bestWhite.accuracy).toFixed(1)}%: the white-box gradients are not informative here (masked or obfuscated).`,
      });
    }
  }
  return out;
}

/** Per attack and threat model: robust accuracy that does not fall at all as eps grows (at least doubling). */
export function flatCurveChecks(entries: readonly AttackResult[], target: Target): CheckResult[] {
  const out: CheckResult[] = [];
  const groups = new Map<string, AttackResult[]>();
  for (const a of entries.filter((e) => e.eps > 0))
    groups.set(`${a.attack}|${a.threat}|${a.norm}`, [...(groups.get(`${a.attack}|${a.threat}|${a.norm}`) ?? []), a]);
  for (const runs of groups.values()) {
    if (runs.length < 2) continue;
    const sorted = [...runs].sort((a, b) => a.eps - b.eps);
    const first = sorted[0],
      last = sorted[sorted.length - 1];
    if (last.eps >= 2 * first.eps && last.accuracy > 0 && last.accuracy >= first.accuracy) {
      out.push({
        id: 'flat-curve',
        target,
        threat: last.threat,
        eps: last.eps,
        fired: true,
        value: last.accuracy - first.accuracy,
        message: `${last.attack} under ${last.threat}: robust accuracy does not fall from eps ${first.eps} (${(100 * first.accuracy).toFixed(1)}%) to eps ${last.eps} (${(100 * last.accuracy).toFixed(1)}%): the attack is not making progress (a masked gradient looks like this).`,
      });
    }
  }
  return out;
}

/** Share of an attack's broken samples that may fall in the last fifth of its steps. */
export const LATE_BREAK_SHARE = 0.05;

/** Per iterative attack entry: were many of its breaks late? */
export function convergenceChecks(entries: readonly AttackResult[], count: number, cleanAccuracy: number, target: Target): CheckResult[] {
  const out: CheckResult[] = [];
  for (const a of entries) {
    const c = a.convergence;
    if (!c) continue;
    const broken = Math.max(1, Math.round((cleanAccuracy - a.accuracy) * count));
    const share = c.lateBroken / broken;
    if (c.lateBroken >= 3 && share >= LATE_BREAK_SHARE) {
      out.push({
        id: 'not-converged',
        target,
        threat: a.threat,
        eps: a.eps,
        fired: true,
        value: share,
        message: `${a.attack} under ${a.threat} at eps ${a.eps}: ${c.lateBroken} of the ${broken} samples it broke were first broken at step ${c.fromStep} or later of ${c.steps}: the attack had not converged, so more steps or restarts would likely break more.`,
      });
    }
  }
  return out;
}
