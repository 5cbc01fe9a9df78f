/**
 * Dense linear algebra for the LESCI and retrieval defenses: a symmetric eigensolver, column
 * orthonormalisation, and large matrix products run on onnxruntime (MLAS, multi-threaded).
 *
 * Matrices are row-major flat arrays. Small work (eigenproblems up to a few hundred rows,
 * orthonormalisation of tall-thin matrices) is plain float64 JS; the large products of the
 * randomized PCA (n × D by D × l with n, D in the thousands) go to onnxruntime in float32, which is
 * 20–50× faster than a JS loop on this kind of machine and accurate enough for power iterations
 * (the results are re-orthonormalised in float64 at every step).
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder, makeModel } from '../onnx/builder';
import { tensorValueInfo } from '../onnx/cut';
import { encodeModel } from '../onnx/proto';
import { createSession, type Session } from '../runtime/session';

export interface SymmetricEigen {
  /** Eigenvalues in descending order. */
  values: Float64Array;
  /** Eigenvectors as columns: vectors[i * n + j] is component i of the eigenvector of values[j]. */
  vectors: Float64Array;
}

/**
 * All eigenvalues and eigenvectors of a real symmetric n × n matrix (row-major; only symmetric
 * input makes sense). Householder tridiagonalisation followed by the implicit QL algorithm
 * (EISPACK tred2/tql2 as in JAMA, public domain): O(n³), backward stable, eigenvectors
 * orthonormal to machine precision. The input is not modified.
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): SymmetricEigen {
  const V = Float64Array.from(a as ArrayLike<number>);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  if (n === 0) return { values: d, vectors: V };
  tred2(V, d, e, n);
  tql2(V, d, e, n);
  // Descending order.
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[j] - d[i] || i - j);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = d[src];
    for (let i = 0; i < n; i++) vectors[i * n + dst] = V[i * n + src];
  });
  return { values, vectors };
}

function tred2(V: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = V[(n - 1) * n + j];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[(i - 1) * n + j];
        V[i * n + j] = 0;
        V[j * n + i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        V[j * n + i] = f;
        g = e[j] + V[j * n + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k * n + j] * d[k];
          e[k] += V[k * n + j] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) V[k * n + j] -= f * e[k] + g * d[k];
        d[j] = V[(i - 1) * n + j];
        V[i * n + j] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[(n - 1) * n + i] = V[i * n + i];
    V[i * n + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k * n + i + 1] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k * n + i + 1] * V[k * n + j];
        for (let k = 0; k <= i; k++) V[k * n + j] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[k * n + i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[(n - 1) * n + j];
    V[(n - 1) * n + j] = 0;
  }
  V[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

function tql2(V: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100) throw new Error('symmetricEigen: QL iteration did not converge');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          for (let k = 0; k < n; k++) {
            const row = k * n;
            h = V[row + i + 1];
            V[row + i + 1] = s * V[row + i] + c * h;
            V[row + i] = c * V[row + i] - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

/**
 * Orthonormalises the columns of a rows × cols matrix in place (modified Gram–Schmidt, applied
 * twice for full float64 orthogonality). A column that is (numerically) in the span of the previous
 * ones becomes zero. Returns the norms of the columns before their last normalisation.
 */
export function orthonormalizeColumns(a: Float64Array, rows: number, cols: number): Float64Array {
  const norms = new Float64Array(cols);
  const col = new Float64Array(rows);
  for (let j = 0; j < cols; j++) {
    for (let i = 0; i < rows; i++) col[i] = a[i * cols + j];
    const original = Math.sqrt(dotSelf(col));
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += a[i * cols + p] * col[i];
        if (dot !== 0) for (let i = 0; i < rows; i++) col[i] -= dot * a[i * cols + p];
      }
    }
    const norm = Math.sqrt(dotSelf(col));
    norms[j] = norm;
    const inv = norm > 1e-12 * Math.max(original, 1e-300) && norm > 0 ? 1 / norm : 0;
    for (let i = 0; i < rows; i++) a[i * cols + j] = col[i] * inv;
  }
  return norms;
}

function dotSelf(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return s;
}

/** C = A · B (A m × k, B k × n), float64. Zero entries of A are skipped (ReLU activations are sparse). */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const co = i * n;
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      if (x === 0) continue;
      const bo = p * n;
      for (let j = 0; j < n; j++) c[co + j] += x * b[bo + j];
    }
  }
  return c;
}

/** C = Aᵀ · B (A m × k, B m × n → C k × n), float64. */
export function matmulTransA(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(k * n);
  for (let i = 0; i < m; i++) {
    const bo = i * n;
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      if (x === 0) continue;
      const co = p * n;
      for (let j = 0; j < n; j++) c[co + j] += x * b[bo + j];
    }
  }
  return c;
}

/** The symmetric Gram matrix A·Aᵀ of the rows of A (m × k), float64. */
export function gramRows(a: ArrayLike<number>, m: number, k: number): Float64Array {
  const g = new Float64Array(m * m);
  const row = new Float64Array(k);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) row[p] = a[i * k + p];
    for (let j = 0; j <= i; j++) {
      let s = 0;
      const o = j * k;
      for (let p = 0; p < k; p++) s += row[p] * a[o + p];
      g[i * m + j] = s;
      g[j * m + i] = s;
    }
  }
  return g;
}

/**
 * Products with one fixed large float32 matrix X (rows × cols) on onnxruntime: X·B and Xᵀ·B for
 * thin float64 B (converted to float32 for the product, results returned as float64).
 */
export class OrtMatrix {
  private constructor(
    private readonly x: ort.Tensor,
    readonly rows: number,
    readonly cols: number,
    private readonly mul: Session,
    private readonly mulT: Session,
  ) {}

  static async create(x: Float32Array, rows: number, cols: number, threads?: number): Promise<OrtMatrix> {
    const make = async (transA: boolean) => {
      const g = new GraphBuilder();
      g.node('Gemm', ['x', 'b'], { transA: transA ? 1 : 0 }, ['y']);
      const model = makeModel(g.graph('product', [tensorValueInfo('x', ['r', 'c']), tensorValueInfo('b', ['k', 'l'])], [tensorValueInfo('y', undefined)]));
      return createSession(encodeModel(model), { ep: 'cpu', threads });
    };
    const mul = await make(false);
    const mulT = await make(true);
    return new OrtMatrix(new ort.Tensor('float32', x, [rows, cols]), rows, cols, mul, mulT);
  }

  /** X · B, B cols × l. */
  async times(b: Float64Array, l: number): Promise<Float64Array> {
    const out = await this.mul.run({ x: this.x, b: new ort.Tensor('float32', Float32Array.from(b), [this.cols, l]) }, ['y']);
    return Float64Array.from(out.y.data as Float32Array);
  }

  /** Xᵀ · B, B rows × l. */
  async transposeTimes(b: Float64Array, l: number): Promise<Float64Array> {
    const out = await this.mulT.run({ x: this.x, b: new ort.Tensor('float32', Float32Array.from(b), [this.rows, l]) }, ['y']);
    return Float64Array.from(out.y.data as Float32Array);
  }

  async release(): Promise<void> {
    await this.mul.release();
    await this.mulT.release();
  }
}
