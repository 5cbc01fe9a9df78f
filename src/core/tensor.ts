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
