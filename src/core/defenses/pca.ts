/**
 * PCA to r dimensions, fitted on the rows of E (n × D, mean-centred), for LESCI's similarity
 * search on reduced vectors (LESCI paper §3.1).
 *
 * Two methods, chosen by `method` ('auto' by default):
 *  - 'exact': the eigen-decomposition of whichever of the n × n Gram matrix X·Xᵀ or the D × D
 *    covariance Xᵀ·X is smaller (X = E − mean), built in float64 and solved by a symmetric
 *    eigensolver (Householder + implicit QL). With the Gram matrix, the principal directions are
 *    vᵢ = Xᵀuᵢ / √λᵢ. Cost ~ m²·max(n, D) + m³ with m = min(n, D); used when m ≤ `exactLimit`
 *    (default 600): a few seconds at most.
 *  - 'randomized': randomized subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4) with
 *    l = r + `oversample` (default 16) Gaussian start vectors from the seed and `iterations`
 *    (default 4) power iterations, re-orthonormalised every half step, then Rayleigh–Ritz on the
 *    l-dimensional subspace (an exact l × l eigenproblem). The large products run on onnxruntime.
 *    The error of the k-th direction shrinks like (σ_{l+1}/σ_k)^(2q+1): the leading directions are
 *    exact to float precision and the last of the r (where the spectrum of activations is flat)
 *    may mix slightly with their neighbours, which does not matter for a nearest-neighbour search
 *    in the reduced space. The test checks both methods against an independent Jacobi solver.
 *
 * Directions with (numerically) zero variance are dropped, so the fitted dimension can be below r
 * when E has rank < r. Signs are fixed (largest-magnitude entry of each direction positive) so
 * that the result is deterministic. r = 0 turns PCA off (`fitPca` returns undefined).
 */
import { Rng } from '../random';
import { OrtMatrix, gramRows, matmul, matmulTransA, orthonormalizeColumns, symmetricEigen } from './linalg';

export interface PcaModel {
  /** D, the input dimension. */
  inputDims: number;
  /** r, the fitted output dimension (≤ the requested one). */
  dims: number;
  /** Mean of the rows of E, D values. */
  mean: Float32Array;
  /** Principal directions, r × D row-major (unit rows, mutually orthogonal). */
  components: Float32Array;
  /** Variance along each direction (eigenvalue / (n − 1)), descending. */
  variances: number[];
  /** Total variance of E (trace of the covariance). */
  totalVariance: number;
  method: 'exact' | 'randomized';
}

export interface PcaOptions {
  method?: 'auto' | 'exact' | 'randomized';
  /** 'auto' uses the exact method when min(n, D) ≤ this. Default 600. */
  exactLimit?: number;
  /** Randomized method: extra subspace dimensions. Default 16. */
  oversample?: number;
  /** Randomized method: power iterations. Default 4. */
  iterations?: number;
  seed?: number;
  /** onnxruntime threads for the randomized method's products (0: one per core). */
  threads?: number;
}

export const PCA_DEFAULTS = { method: 'auto', exactLimit: 600, oversample: 16, iterations: 4, seed: 0 } as const;

/** Fits PCA to `r` dimensions on the n rows (D values each) of `x`. Returns undefined when r = 0. */
export async function fitPca(x: Float32Array, n: number, d: number, r: number, options: PcaOptions = {}): Promise<PcaModel | undefined> {
  if (!Number.isInteger(r) || r < 0) throw new RangeError(`PCA dimension must be a non-negative integer, got ${r}`);
  if (r === 0) return undefined;
  if (x.length !== n * d) throw new RangeError(`PCA input has ${x.length} values, expected ${n} × ${d}`);
  if (n < 2) throw new RangeError('PCA needs at least 2 rows');
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const xc = new Float32Array(n * d);
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const v = x[i * d + j] - mean[j];
      xc[i * d + j] = v;
      total += v * v;
    }
  }
  const rank = Math.min(n - 1, d);
  const want = Math.min(r, rank);
  const m = Math.min(n, d);
  const method = options.method ?? PCA_DEFAULTS.method;
  const oversample = options.oversample ?? PCA_DEFAULTS.oversample;
  const l = Math.min(want + oversample, m);
  const exact = method === 'exact' || (method === 'auto' && (m <= (options.exactLimit ?? PCA_DEFAULTS.exactLimit) || l >= m));
  const { values, directions } = exact ? exactPca(xc, n, d, want) : await randomizedPca(xc, n, d, want, l, options);
  // Keep directions with non-negligible variance.
  const tol = Math.max(values[0] ?? 0, 0) * 1e-10 + 1e-30;
  let kept = 0;
  while (kept < want && values[kept] > tol) kept++;
  const components = new Float32Array(kept * d);
  for (let c = 0; c < kept; c++) {
    // Sign: the largest-magnitude entry positive.
    let big = 0;
    for (let j = 0; j < d; j++) if (Math.abs(directions[c * d + j]) > Math.abs(directions[c * d + big])) big = j;
    const s = directions[c * d + big] < 0 ? -1 : 1;
    for (let j = 0; j < d; j++) components[c * d + j] = s * directions[c * d + j];
  }
  return {
    inputDims: d,
    dims: kept,
    mean: Float32Array.from(mean),
    components,
    variances: Array.from(values.subarray(0, kept), (v) => v / (n - 1)),
    totalVariance: total / (n - 1),
    method: exact ? 'exact' : 'randomized',
  };
}

/** Top `r` eigenpairs of XcᵀXc: eigenvalues (descending) and unit directions (r × d, row-major). */
function exactPca(xc: Float32Array, n: number, d: number, r: number): { values: Float64Array; directions: Float64Array } {
  const directions = new Float64Array(r * d);
  const values = new Float64Array(r);
  if (n <= d) {
    const { values: ev, vectors } = symmetricEigen(gramRows(xc, n, d), n);
    for (let c = 0; c < r; c++) {
      values[c] = ev[c];
      if (!(ev[c] > 0)) continue;
      // v = Xcᵀ u / √λ.
      const inv = 1 / Math.sqrt(ev[c]);
      for (let i = 0; i < n; i++) {
        const u = vectors[i * n + c] * inv;
        if (u === 0) continue;
        for (let j = 0; j < d; j++) directions[c * d + j] += u * xc[i * d + j];
      }
    }
  } else {
    const cov = matmulTransA(xc, xc, n, d, d);
    const { values: ev, vectors } = symmetricEigen(cov, d);
    for (let c = 0; c < r; c++) {
      values[c] = ev[c];
      for (let j = 0; j < d; j++) directions[c * d + j] = vectors[j * d + c];
    }
  }
  return { values, directions };
}

async function randomizedPca(
  xc: Float32Array,
  n: number,
  d: number,
  r: number,
  l: number,
  options: PcaOptions,
): Promise<{ values: Float64Array; directions: Float64Array }> {
  const iterations = options.iterations ?? PCA_DEFAULTS.iterations;
  const rng = new Rng(options.seed ?? PCA_DEFAULTS.seed).fork('pca-randomized');
  const omega = rng.normals(new Float64Array(d * l));
  const X = await OrtMatrix.create(xc, n, d, options.threads);
  try {
    let y = await X.times(omega, l); // n × l
    orthonormalizeColumns(y, n, l);
    for (let q = 0; q < iterations; q++) {
      const z = await X.transposeTimes(y, l); // d × l
      orthonormalizeColumns(z, d, l);
      y = await X.times(z, l);
      orthonormalizeColumns(y, n, l);
    }
    // B = Yᵀ Xc (l × d) = Zᵀ with Z = Xcᵀ Y; B Bᵀ = Zᵀ Z; right singular vectors v = Z s / σ.
    const z = await X.transposeTimes(y, l); // d × l
    const small = matmulTransA(z, z, d, l, l);
    const { values: ev, vectors } = symmetricEigen(small, l);
    const values = new Float64Array(r);
    const directions = new Float64Array(r * d);
    const zs = matmul(z, vectors, d, l, l); // d × l: column c is Z s_c
    for (let c = 0; c < r; c++) {
      values[c] = ev[c];
      if (!(ev[c] > 0)) continue;
      const inv = 1 / Math.sqrt(ev[c]);
      for (let j = 0; j < d; j++) directions[c * d + j] = zs[j * l + c] * inv;
    }
    return { values, directions };
  } finally {
    await X.release();
  }
}

/** Projects n rows of D values onto the principal directions: (x − mean) · Cᵀ, n × r, float64. */
export function pcaTransform(pca: PcaModel, x: ArrayLike<number>, n: number): Float64Array {
  const { inputDims: d, dims: r, mean, components } = pca;
  const out = new Float64Array(n * r);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = x[i * d + j] - mean[j];
    for (let c = 0; c < r; c++) {
      let s = 0;
      const o = c * d;
      for (let j = 0; j < d; j++) s += row[j] * components[o + j];
      out[i * r + c] = s;
    }
  }
  return out;
}

/** Fraction of the total variance the fitted directions explain. */
export function explainedVarianceRatio(pca: PcaModel): number {
  const s = pca.variances.reduce((a, b) => a + b, 0);
  return pca.totalVariance > 0 ? s / pca.totalVariance : 0;
}
