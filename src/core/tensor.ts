/** A dense float32 tensor in row-major order. `dims[0]` is the batch dimension where there is one. */
export interface Tensor {
  data: Float32Array;
  dims: number[];
}

export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Index of the largest value in each row of a [rows, classes] array (first one on ties). */
export function argmaxRows(values: ArrayLike<number>, classes: number): Int32Array {
  const n = Math.floor(values.length / classes);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (values[i * classes + c] > values[i * classes + best]) best = c;
    out[i] = best;
  }
  return out;
}
