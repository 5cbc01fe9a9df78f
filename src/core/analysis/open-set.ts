/**
 * Open-set recognition (dAE paper, "overgeneralization"): a classifier that learnt K classes sees
 * inputs of other classes; a score on each input (the top probability) should be lower on those
 * unknowns than on known inputs, so that a threshold rejects them. Known inputs are the positives.
 *
 * - AUROC: P(score of a known > score of an unknown), ties one half (stats.ts rocAuc).
 * - FPR at 95% TPR: the threshold t is the highest one that still accepts (score ≥ t) at least 95%
 *   of the known inputs, i.e. the ⌈0.95·n_known⌉-th largest known score; the FPR is the share of
 *   unknown inputs with score ≥ t.
 * - Per threshold t: unknowns rejected (score < t), knowns rejected, accuracy on accepted knowns.
 */
import type { OpenSetScorer, OpenSetThresholdRow } from '../../protocol/run-result';
import { rocAuc } from './stats';

/** The top value of each row of a [n, classes] probability matrix. */
export function topScores(probabilities: Float32Array, classes: number): Float64Array {
  const n = probabilities.length / classes;
  const top = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let best = -Infinity;
    for (let c = 0; c < classes; c++) best = Math.max(best, probabilities[j * classes + c]);
    top[j] = best;
  }
  return top;
}

/** FPR at the highest threshold that keeps at least `tpr` of the known inputs (default 95%). */
export function fprAtTpr(known: ArrayLike<number>, unknown: ArrayLike<number>, tpr = 0.95): { fpr: number; threshold: number } {
  if (known.length === 0 || unknown.length === 0) throw new RangeError('fprAtTpr: empty score set');
  const sorted = Float64Array.from(known).sort().reverse();
  // A little slack so that 0.95·n that is a whole number in exact arithmetic is not rounded up.
  const k = Math.max(1, Math.ceil(tpr * sorted.length - 1e-9));
  const threshold = sorted[k - 1];
  let accepted = 0;
  for (let i = 0; i < unknown.length; i++) if (unknown[i] >= threshold) accepted++;
  return { fpr: accepted / unknown.length, threshold };
}

/** The ROC curve (known positive) at every distinct score, thinned to at most `maxPoints` points. */
export function rocCurve(known: ArrayLike<number>, unknown: ArrayLike<number>, maxPoints = 201): { fpr: number[]; tpr: number[] } {
  const scored = [...Array.from(known, (s) => [s, 1] as const), ...Array.from(unknown, (s) => [s, 0] as const)].sort((a, b) => b[0] - a[0]);
  const fpr = [0];
  const tpr = [0];
  let tp = 0,
    fp = 0;
  for (let i = 0; i < scored.length; i++) {
    if (scored[i][1]) tp++;
    else fp++;
    // One point per distinct score: tied inputs are accepted or rejected together.
    if (i + 1 === scored.length || scored[i + 1][0] !== scored[i][0]) {
      fpr.push(fp / unknown.length);
      tpr.push(tp / known.length);
    }
  }
  if (fpr.length <= maxPoints) return { fpr, tpr };
  const keep = Array.from({ length: maxPoints }, (_, k) => Math.round((k * (fpr.length - 1)) / (maxPoints - 1)));
  return { fpr: keep.map((k) => fpr[k]), tpr: keep.map((k) => tpr[k]) };
}

export function openSetThresholdRows(
  known: ArrayLike<number>,
  knownCorrect: ArrayLike<number>,
  unknown: ArrayLike<number>,
  thresholds: readonly number[],
): OpenSetThresholdRow[] {
  return thresholds.map((threshold) => {
    let knownAccepted = 0,
      correctAccepted = 0,
      unknownAccepted = 0;
    for (let i = 0; i < known.length; i++) {
      if (known[i] < threshold) continue;
      knownAccepted++;
      if (knownCorrect[i]) correctAccepted++;
    }
    for (let i = 0; i < unknown.length; i++) if (unknown[i] >= threshold) unknownAccepted++;
    return {
      threshold,
      unknownRejectionRate: (unknown.length - unknownAccepted) / unknown.length,
      knownRejectionRate: (known.length - knownAccepted) / known.length,
      acceptedAccuracy: knownAccepted ? correctAccepted / knownAccepted : null,
      knownAccepted,
      unknownAccepted,
    };
  });
}

/** Every open-set figure of one scorer. `knownCorrect[i]` is 1 when known input i is classified correctly. */
export function openSetScorer(
  score: OpenSetScorer['score'],
  known: ArrayLike<number>,
  knownCorrect: ArrayLike<number>,
  unknown: ArrayLike<number>,
  thresholds: readonly number[],
): OpenSetScorer {
  const at95 = fprAtTpr(known, unknown, 0.95);
  return {
    score,
    auroc: rocAuc(known, unknown),
    fprAt95Tpr: at95.fpr,
    thresholdAt95Tpr: at95.threshold,
    thresholds: openSetThresholdRows(known, knownCorrect, unknown, thresholds),
    roc: rocCurve(known, unknown),
  };
}
