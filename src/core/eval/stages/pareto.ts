/**
 * The Pareto front of points to maximise in every coordinate (the layer sweep: clean accuracy and
 * worst-case robust accuracy). Pure, no engine: the sweep marks its layers with it, tests check it
 * by hand.
 */

/**
 * Point p is on the front when no other point q is at least as good in every coordinate and
 * strictly better in one (q dominates p). Equal points do not dominate each other, so duplicates
 * are on the front together. A point with a NaN coordinate is never on the front and dominates
 * nothing. O(n²·k), for the few dozen layers of a sweep.
 */
export function paretoFront(points: readonly (readonly number[])[]): boolean[] {
  const valid = points.map((p) => p.every((v) => !Number.isNaN(v)));
  const dominates = (q: readonly number[], p: readonly number[]) => q.every((v, c) => v >= p[c]) && q.some((v, c) => v > p[c]);
  return points.map((p, i) => valid[i] && !points.some((q, j) => j !== i && valid[j] && dominates(q, p)));
}
