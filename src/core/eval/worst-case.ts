/**
 * The worst case per norm and epsilon as AutoAttack counts it: a sample is robust only if it
 * survived every attack under every threat model (the per-sample union of successes), and each
 * broken sample is credited to the first attack, in run order, that broke it. Lower than or equal
 * to the best single attack, never higher.
 */
import { decodeBits } from '../../protocol/bitset';
import type { AdversarialConfusion, AttackResult, PerClassAccuracy, WorstCase } from '../../protocol/run-result';

/** A defense is broken at an epsilon when its worst case is within this of the baseline's. */
export const BROKEN_MARGIN = 0.01;

/**
 * `entries`: attacks on one classifier (in the order they ran) over `cleanCorrect.length` samples;
 * `cleanCorrect[i]` is 1 when that classifier gets sample i right without an attack. `baseline`:
 * the undefended model's worst cases, to compare with.
 */
export function unionWorstCases(entries: readonly AttackResult[], cleanCorrect: Uint8Array, baseline?: readonly WorstCase[]): WorstCase[] {
  const count = cleanCorrect.length;
  const groups = new Map<string, AttackResult[]>();
  for (const a of entries) {
    const key = `${a.norm}:${a.eps}`;
    groups.set(key, [...(groups.get(key) ?? []), a]);
  }
  return [...groups.values()]
    .map((runs): WorstCase => {
      const strongest = runs.reduce((w, a) => (a.accuracy < w.accuracy ? a : w));
      const base = baseline?.find((b) => b.norm === strongest.norm && b.eps === strongest.eps);
      const withBaseline = (w: Omit<WorstCase, 'baselineAccuracy' | 'broken'>): WorstCase => ({
        ...w,
        baselineAccuracy: base?.accuracy,
        broken: base !== undefined && w.accuracy <= base.accuracy + BROKEN_MARGIN,
      });
      const common = { eps: strongest.eps, norm: strongest.norm, attack: strongest.attack, threat: strongest.threat, singleAccuracy: strongest.accuracy };
      // Results without per-sample outcomes (written by an older version) only allow the single-attack minimum.
      if (runs.some((a) => typeof a.robust !== 'string')) return withBaseline({ ...common, accuracy: strongest.accuracy, method: 'strongest-single' });
      const robust = runs.map((a) => decodeBits(a.robust!, count));
      const credit = new Map<string, { attack: string; threat: string; count: number }>();
      const give = (attack: string, threat: string) => {
        const key = `${attack}\u0000${threat}`;
        const c = credit.get(key) ?? { attack, threat, count: 0 };
        c.count++;
        credit.set(key, c);
      };
      let survivors = 0;
      for (let i = 0; i < count; i++) {
        if (!cleanCorrect[i]) {
          give('clean', '');
          continue;
        }
        const first = robust.findIndex((bits) => !bits[i]);
        if (first < 0) survivors++;
        else give(runs[first].attack, runs[first].threat);
      }
      return withBaseline({ ...common, accuracy: count ? survivors / count : 0, method: 'per-sample-union', firstBroken: [...credit.values()] });
    })
    .sort((a, b) => a.norm.localeCompare(b.norm) || a.eps - b.eps);
}

/** Attacks grouped by norm and epsilon, in run order within each group; groups sorted by norm, then eps. */
function byNormAndEps(entries: readonly AttackResult[]): AttackResult[][] {
  const groups = new Map<string, AttackResult[]>();
  for (const a of entries) {
    const key = `${a.norm}:${a.eps}`;
    groups.set(key, [...(groups.get(key) ?? []), a]);
  }
  return [...groups.values()].sort((a, b) => a[0].norm.localeCompare(b[0].norm) || a[0].eps - b[0].eps);
}

/**
 * Clean and worst-case accuracy per class, as counts. `entries`: the attacks on one classifier over
 * `labels.length` samples; `cleanPredictions`: that classifier's predictions without an attack.
 * Per norm and epsilon a sample is robust only if it survived every attack there (the per-sample
 * union, as in unionWorstCases); groups with an entry lacking per-sample outcomes are left out.
 */
export function perClassAccuracy(entries: readonly AttackResult[], labels: Int32Array, cleanPredictions: Int32Array, classes: number): PerClassAccuracy {
  const count = new Array<number>(classes).fill(0);
  const cleanCorrect = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) {
    count[labels[i]]++;
    if (cleanPredictions[i] === labels[i]) cleanCorrect[labels[i]]++;
  }
  const robust: PerClassAccuracy['robust'] = [];
  for (const runs of byNormAndEps(entries)) {
    if (runs.some((a) => typeof a.robust !== 'string')) continue;
    const bits = runs.map((a) => decodeBits(a.robust!, labels.length));
    const correct = new Array<number>(classes).fill(0);
    for (let i = 0; i < labels.length; i++) {
      if (cleanPredictions[i] === labels[i] && bits.every((b) => b[i])) correct[labels[i]]++;
    }
    robust.push({ norm: runs[0].norm, eps: runs[0].eps, correct });
  }
  return { count, cleanCorrect, robust };
}

/**
 * The adversarial confusion matrix at the largest epsilon of the first norm (plans have one norm):
 * true class × the prediction of the first attack, in run order, that fooled the sample (its
 * per-sample adversarial predictions in `predictions`); a sample no attack fooled counts under its
 * true class, one misclassified clean under its clean prediction. Undefined when no attack ran or
 * an entry there lacks its per-sample outcomes or predictions.
 */
export function adversarialConfusion(
  entries: readonly AttackResult[],
  predictions: ReadonlyMap<AttackResult, Int32Array>,
  labels: Int32Array,
  cleanPredictions: Int32Array,
  classes: number,
): AdversarialConfusion | undefined {
  const groups = byNormAndEps(entries);
  if (!groups.length) return undefined;
  const norm = groups[0][0].norm;
  const runs = groups.filter((g) => g[0].norm === norm).pop()!;
  if (runs.some((a) => typeof a.robust !== 'string' || predictions.get(a)?.length !== labels.length)) return undefined;
  const bits = runs.map((a) => decodeBits(a.robust!, labels.length));
  const matrix = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (cleanPredictions[i] !== y) {
      matrix[y][cleanPredictions[i]]++;
      continue;
    }
    const first = bits.findIndex((b) => !b[i]);
    matrix[y][first < 0 ? y : predictions.get(runs[first])![i]]++;
  }
  return { norm, eps: runs[0].eps, method: 'per-sample-union-first-break', matrix };
}
