/**
 * Small statistics shared by the analyses: correlations (Pearson, Spearman with average ranks on
 * ties) and the ROC area of two score samples. Float64 throughout; pure, no onnxruntime.
 */

/** Pearson correlation of a and b; null when either is constant (or fewer than two values). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number | null {
  const n = a.length;
  if (n !== b.length) throw new RangeError(`pearson: ${n} and ${b.length} values`);
  if (n < 2) return null;
  let ma = 0,
    mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma;
    const db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (!(saa > 0) || !(sbb > 0)) return null;
  // Clamped: rounding can push a perfect correlation a hair past ±1.
  return Math.max(-1, Math.min(1, sab / Math.sqrt(saa * sbb)));
}

/** 1-based ranks of v; equal values share the average of the ranks they span. */
export function averageRanks(v: ArrayLike<number>): Float64Array {
  const n = v.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => v[x] - v[y]);
  const ranks = new Float64Array(n);
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && v[order[end]] === v[order[start]]) end++;
    // Positions start..end-1 hold one value: ranks start+1..end, whose mean is (start+1+end)/2.
    const rank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]] = rank;
    start = end;
  }
  return ranks;
}

/** Spearman's rank correlation: Pearson of the average ranks. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number | null {
  return pearson(averageRanks(a), averageRanks(b));
}

/**
 * Area under the ROC curve with `positive` scored high: P(p > n) + ½·P(p = n) over all pairs, the
 * Mann-Whitney U statistic over n_p·n_n, computed from average ranks in O(N log N).
 */
export function rocAuc(positive: ArrayLike<number>, negative: ArrayLike<number>): number {
  const np = positive.length;
  const nn = negative.length;
  if (np === 0 || nn === 0) throw new RangeError(`rocAuc: ${np} positive and ${nn} negative scores`);
  const all = new Float64Array(np + nn);
  for (let i = 0; i < np; i++) all[i] = positive[i];
  for (let i = 0; i < nn; i++) all[np + i] = negative[i];
  if (all.some((s) => Number.isNaN(s))) throw new RangeError('rocAuc: a score is NaN');
  const ranks = averageRanks(all);
  let rankSum = 0;
  for (let i = 0; i < np; i++) rankSum += ranks[i];
  return (rankSum - (np * (np + 1)) / 2) / (np * nn);
}
