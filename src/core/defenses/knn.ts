/**
 * Exact k-nearest-neighbour search, twice: as an ONNX subgraph (MatMul + TopK, written with
 * GraphBuilder so that it splices into a defense model; the reference rows are initializers), and
 * as plain float64 JS (brute force), the independent reference the tests compare against and the
 * search the fitting code uses.
 *
 * Distances:
 *  - 'cosine': 1 − cos(q, b). Both sides are normalised by √(‖v‖² + ε²), ε = 1e-12 (reference rows
 *    at build time; a zero vector stays zero, so its cosine with anything is 0). The ε is added
 *    rather than taken as a Max so that the graph only uses ops the autodiff differentiates.
 *  - 'l2': the squared Euclidean distance ‖q‖² − 2 q·b + ‖b‖², with ‖b‖² precomputed.
 * Ties: the lower reference index first (ONNX TopK's and ArgMax/ArgMin's documented tie-break,
 * reproduced in JS). With k = 1 and no distances asked for, the graph uses ArgMax/ArgMin instead of
 * TopK (piecewise-constant ops that gradient analysis knows carry no gradient).
 */
import type { GraphBuilder } from '../onnx/builder';

export type Distance = 'cosine' | 'l2';

export const COSINE_EPS = 1e-12;

/** The norm cosine similarity divides by, from the squared norm: √(‖v‖² + ε²). */
export function cosineNorm(squaredNorm: number): number {
  return Math.sqrt(squaredNorm + COSINE_EPS * COSINE_EPS);
}

export interface KnnTensors {
  /** int64 [N, k]: reference row indices, nearest first. */
  indices: string;
  /** float [N, k]: their distances (1 − cosine, or squared L2); for cosine only when named in `names`. */
  distances?: string;
}

/**
 * Adds to `g` the exact k-NN search of the rows of `query` (float [N, d]) among the n rows of
 * `reference` (n × d, row-major). `names` fixes the output tensor names (else fresh ones); cosine
 * distances are only computed when `names.distances` asks for them (no dead nodes otherwise).
 * `options.candidates` (a bool tensor [N, n], e.g. lsh.ts's addLshCandidateMask) restricts the
 * search to the rows it marks: the others get distance +∞ (similarity −∞) before the TopK.
 */
export function addKnnSearch(
  g: GraphBuilder,
  query: string,
  reference: ArrayLike<number>,
  n: number,
  d: number,
  k: number,
  distance: Distance,
  names: Partial<KnnTensors> = {},
  options: { candidates?: string } = {},
): KnnTensors {
  if (!(k >= 1 && k <= n)) throw new RangeError(`k = ${k} must lie in [1, ${n}] (the number of reference rows)`);
  const axes1 = g.int64Const('knn_axes', [1]);
  const indices = names.indices ?? g.fresh('knn_indices');
  if (distance === 'cosine') {
    const normalized = normalizeRows(reference, n, d);
    const bt = g.floatConst('knn_reference_t', [d, n], transpose(normalized, n, d));
    const sq = g.op('ReduceSum', [g.op('Mul', [query, query]), axes1], { keepdims: 1 });
    const norm = g.op('Sqrt', [g.op('Add', [sq, g.scalar(COSINE_EPS * COSINE_EPS, 'knn_eps2')])]);
    const qn = g.op('Div', [query, norm]);
    const all = g.op('MatMul', [qn, bt]);
    const sims = options.candidates ? g.op('Where', [options.candidates, all, g.scalar(-Infinity, 'knn_minus_inf')]) : all;
    if (k === 1 && !names.distances) {
      g.node('ArgMax', [sims], { axis: 1, keepdims: 1, select_last_index: 0 }, [indices]);
      return { indices };
    }
    const [values] = g.node('TopK', [sims, g.int64Const('knn_k', [k])], { axis: 1, largest: 1, sorted: 1 }, [g.fresh('knn_sims'), indices]);
    if (names.distances) g.node('Sub', [g.scalar(1, 'knn_one'), values], {}, [names.distances]);
    return { indices, distances: names.distances };
  }
  const bt = g.floatConst('knn_reference_t', [d, n], transpose(reference, n, d));
  const bsq = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += reference[i * d + j] * reference[i * d + j];
    bsq[i] = s;
  }
  const bsqName = g.floatConst('knn_reference_sq', [n], bsq);
  const qsq = g.op('ReduceSum', [g.op('Mul', [query, query]), axes1], { keepdims: 1 }); // [N, 1]
  const cross = g.op('MatMul', [query, bt]); // [N, n]
  const all = g.op('Add', [g.op('Sub', [qsq, g.op('Mul', [cross, g.scalar(2, 'knn_two')])]), bsqName]);
  const d2 = options.candidates ? g.op('Where', [options.candidates, all, g.scalar(Infinity, 'knn_inf')]) : all;
  if (k === 1 && !names.distances) {
    g.node('ArgMin', [d2], { axis: 1, keepdims: 1, select_last_index: 0 }, [indices]);
    return { indices };
  }
  const distances = names.distances ?? g.fresh('knn_distances');
  g.node('TopK', [d2, g.int64Const('knn_k', [k])], { axis: 1, largest: 0, sorted: 1 }, [distances, indices]);
  return { indices, distances };
}

function transpose(a: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

/** Rows scaled to unit L2 norm (zero rows stay zero), float32. */
export function normalizeRows(a: ArrayLike<number>, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += a[i * d + j] * a[i * d + j];
    const inv = 1 / cosineNorm(s);
    for (let j = 0; j < d; j++) out[i * d + j] = a[i * d + j] * inv;
  }
  return out;
}

export interface KnnResult {
  /** [nq, k] reference row indices, nearest first (ties: lower index first). */
  indices: Int32Array;
  /** [nq, k] distances (1 − cosine, or squared L2), float64. */
  distances: Float64Array;
}

/**
 * Brute-force exact k-NN in float64: every query against every reference row, computed directly
 * (Σ(q − b)² for L2, q·b / (‖q‖‖b‖) for cosine). `exclude(q)` names a reference row to skip for
 * query q (leave-one-out), or −1.
 */
export function knnSearch(
  queries: ArrayLike<number>,
  nq: number,
  reference: ArrayLike<number>,
  n: number,
  d: number,
  k: number,
  distance: Distance,
  exclude?: (q: number) => number,
): KnnResult {
  const kk = Math.min(k, n - (exclude ? 1 : 0));
  if (kk < 1) throw new RangeError('k-NN search needs at least one reference row');
  const indices = new Int32Array(nq * k).fill(-1);
  const distances = new Float64Array(nq * k).fill(Infinity);
  const refNorm = new Float64Array(n);
  if (distance === 'cosine') {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += reference[i * d + j] * reference[i * d + j];
      refNorm[i] = cosineNorm(s);
    }
  }
  const q = new Float64Array(d);
  const bestI = new Int32Array(kk);
  const bestD = new Float64Array(kk);
  for (let a = 0; a < nq; a++) {
    for (let j = 0; j < d; j++) q[j] = queries[a * d + j];
    let qNorm = 0;
    if (distance === 'cosine') {
      for (let j = 0; j < d; j++) qNorm += q[j] * q[j];
      qNorm = cosineNorm(qNorm);
    }
    const skip = exclude ? exclude(a) : -1;
    let filled = 0;
    for (let i = 0; i < n; i++) {
      if (i === skip) continue;
      const o = i * d;
      let dist: number;
      if (distance === 'cosine') {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += q[j] * reference[o + j];
        dist = 1 - dot / (qNorm * refNorm[i]);
      } else {
        dist = 0;
        for (let j = 0; j < d; j++) {
          const t = q[j] - reference[o + j];
          dist += t * t;
        }
      }
      // Insert into the sorted top list (strictly smaller only: earlier indices win ties).
      let p: number;
      if (filled < kk) p = filled++;
      else if (dist < bestD[kk - 1]) p = kk - 1;
      else continue;
      while (p > 0 && bestD[p - 1] > dist) {
        bestD[p] = bestD[p - 1];
        bestI[p] = bestI[p - 1];
        p--;
      }
      bestD[p] = dist;
      bestI[p] = i;
    }
    for (let p = 0; p < kk; p++) {
      indices[a * k + p] = bestI[p];
      distances[a * k + p] = bestD[p];
    }
  }
  return { indices, distances };
}

/** One distance in float64, the way `knnSearch` computes it. */
export function pairDistance(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, d: number, distance: Distance): number {
  if (distance === 'l2') {
    let s = 0;
    for (let j = 0; j < d; j++) {
      const t = a[ao + j] - b[bo + j];
      s += t * t;
    }
    return s;
  }
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let j = 0; j < d; j++) {
    dot += a[ao + j] * b[bo + j];
    na += a[ao + j] * a[ao + j];
    nb += b[bo + j] * b[bo + j];
  }
  return 1 - dot / (cosineNorm(na) * cosineNorm(nb));
}
