/** The attention stage in JS (float64): α = softmax(s·hᵀU h_n), h̄ = Σ α h_n, ȳ = Σ α y_n; the leave-one-out training features. */
import { retrievalSearch } from './search';
import type { Attention, RetrievalIndex, SearchOptions } from './types';

/** The attention stage in float64: α = softmax(s · hᵀU h_n) (U = index.attention, or I), h̄ = Σ α h_n, ȳ = Σ α y_n. */
export function retrievalAttend(index: RetrievalIndex, h: ArrayLike<number>, count: number, indices: Int32Array): Attention {
  const N = index.neighbours;
  const D = index.size;
  const C = index.numClasses;
  const alpha = new Float64Array(count * N);
  const hbar = new Float32Array(count * D);
  const ybar = new Float32Array(count * C);
  const beta = new Float64Array(N);
  const acc = new Float64Array(D);
  const U = index.attention;
  const hu = new Float64Array(D);
  for (let a = 0; a < count; a++) {
    if (U) {
      hu.fill(0);
      for (let j = 0; j < D; j++) {
        const v = h[a * D + j];
        if (v !== 0) for (let k = 0; k < D; k++) hu[k] += v * U[j * D + k];
      }
    } else for (let j = 0; j < D; j++) hu[j] = h[a * D + j];
    let max = -Infinity;
    for (let m = 0; m < N; m++) {
      const row = indices[a * N + m] * D;
      let s = 0;
      for (let j = 0; j < D; j++) s += hu[j] * index.database[row + j];
      beta[m] = index.scale * s;
      if (beta[m] > max) max = beta[m];
    }
    let z = 0;
    for (let m = 0; m < N; m++) z += beta[m] = Math.exp(beta[m] - max);
    acc.fill(0);
    for (let m = 0; m < N; m++) {
      const w = beta[m] / z;
      alpha[a * N + m] = w;
      const i = indices[a * N + m];
      const row = i * D;
      for (let j = 0; j < D; j++) acc[j] += w * index.database[row + j];
      ybar[a * C + index.labels[i]] += w;
    }
    for (let j = 0; j < D; j++) hbar[a * D + j] = acc[j];
  }
  return { alpha, hbar, ybar };
}

/** The JS pipeline of the defense, up to h̄/ȳ: search (exact or LSH) then attention. */
export function retrievalForward(index: RetrievalIndex, h: ArrayLike<number>, count: number, options: SearchOptions = {}): Attention & { indices: Int32Array } {
  const { indices } = retrievalSearch(index, h, count, options);
  return { indices, ...retrievalAttend(index, h, count, indices) };
}

/**
 * The training samples of the learned attention: for every database row i, [h_i; h_{n_1} … h_{n_N};
 * y_{n_1} … y_{n_N}] (one-hot labels) with n_1 … n_N its leave-one-out neighbours (row i is
 * excluded from its own search), one flat row of D + N·D + N·C values each; also the neighbours.
 */
export function leaveOneOutSamples(index: RetrievalIndex, method: 'exact' | 'lsh'): { x: Float32Array; neighbours: Int32Array; width: number } {
  const { indices } = retrievalSearch(index, index.database, index.n, { method, exclude: (q) => q });
  const D = index.size;
  const C = index.numClasses;
  const N = index.neighbours;
  const width = D + N * D + N * C;
  const x = new Float32Array(index.n * width);
  for (let i = 0; i < index.n; i++) {
    const o = i * width;
    x.set(index.database.subarray(i * D, (i + 1) * D), o);
    for (let m = 0; m < N; m++) {
      const r = indices[i * N + m];
      if (r === i) throw new Error(`leave-one-out: row ${i} retrieved itself`);
      x.set(index.database.subarray(r * D, (r + 1) * D), o + D + m * D);
      x[o + D + N * D + m * C + index.labels[r]] = 1;
    }
  }
  return { x, neighbours: indices, width };
}

/** Leave-one-out [h̄; ȳ] features of the whole database. */
export function leaveOneOutFeatures(index: RetrievalIndex, method: 'exact' | 'lsh'): Float32Array {
  const { indices } = retrievalSearch(index, index.database, index.n, { method, exclude: (q) => q });
  return databaseFeatures(index, indices);
}

/** [h̄; ȳ] of every database row, attending over the given neighbours (n × N indices). */
export function databaseFeatures(index: RetrievalIndex, neighbours: Int32Array): Float32Array {
  const { hbar, ybar } = retrievalAttend(index, index.database, index.n, neighbours);
  const D = index.size;
  const C = index.numClasses;
  const F = D + C;
  const features = new Float32Array(index.n * F);
  for (let i = 0; i < index.n; i++) {
    features.set(hbar.subarray(i * D, (i + 1) * D), i * F);
    features.set(ybar.subarray(i * C, (i + 1) * C), i * F + D);
  }
  return features;
}
