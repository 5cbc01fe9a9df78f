/**
 * The worst case per norm and epsilon as AutoAttack counts it: a sample is robust only if it
 * survived every attack under every threat model (the per-sample union of successes), and each
 * broken sample is credited to the first attack, in run order, that broke it. Lower than or equal
 * to the best single attack, never higher.
 */
import { decodeBits } from '../../protocol/bitset';
import type { AttackResult, WorstCase } from '../../protocol/run-result';

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
