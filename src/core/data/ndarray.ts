/** A decoded n-dimensional array, the common ground of the IDX, NPY and NPZ readers. */
import { UserError } from '../errors';

export type DType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'uint64' | 'int64' | 'float32' | 'float64';

/**
 * uint8 stays uint8 (compact images); float32 and float64 become float32 (images are float32 at most);
 * every other integer type becomes float64, which holds any label exactly.
 */
export interface NdArray {
  dtype: DType;
  shape: number[];
  data: Uint8Array | Float32Array | Float64Array;
}

const ITEM_SIZE: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  uint64: 8,
  int64: 8,
  float32: 4,
  float64: 8,
};

export function itemSize(dtype: DType): number {
  return ITEM_SIZE[dtype];
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Number of NaN / ±Infinity values of a float array and the index of the first (-1 when none). */
export function countNonFinite(data: ArrayLike<number>): { count: number; first: number } {
  let count = 0;
  let first = -1;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      if (first < 0) first = i;
      count++;
    }
  }
  return { count, first };
}

/** Decodes `shape` elements of `dtype` starting at `offset`; `where` names the file (or zip entry) for errors. */
export function decodeArray(bytes: Uint8Array, offset: number, shape: number[], dtype: DType, littleEndian: boolean, where: string): NdArray {
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new UserError(
      `${where} declares the shape [${shape.join(', ')}]; every dimension must be a non-negative integer.`,
      'The file is corrupt or was not written by numpy/IDX tools; export it again.',
    );
  }
  const count = elementCount(shape);
  const needed = count * ITEM_SIZE[dtype];
  if (!Number.isSafeInteger(needed)) {
    throw new UserError(`${where} declares the shape [${shape.join(', ')}], larger than any file can hold.`, 'The file is corrupt; export it again.');
  }
  const available = bytes.length - offset;
  if (available < needed) {
    throw new UserError(
      `${where} is truncated: its header announces shape [${shape.join(', ')}] of ${dtype} ` +
        `(${needed} data bytes) but only ${Math.max(0, available)} bytes follow the header.`,
      'The file is incomplete or corrupt; download or export it again.',
    );
  }
  if (dtype === 'uint8') return { dtype, shape, data: bytes.slice(offset, offset + count) };
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, needed);
  const out = dtype === 'float32' || dtype === 'float64' ? new Float32Array(count) : new Float64Array(count);
  const read = reader(view, dtype, littleEndian);
  for (let i = 0; i < count; i++) out[i] = read(i);
  return { dtype, shape, data: out };
}

function reader(view: DataView, dtype: Exclude<DType, 'uint8'>, le: boolean): (i: number) => number {
  switch (dtype) {
    case 'int8':
      return (i) => view.getInt8(i);
    case 'uint16':
      return (i) => view.getUint16(i * 2, le);
    case 'int16':
      return (i) => view.getInt16(i * 2, le);
    case 'uint32':
      return (i) => view.getUint32(i * 4, le);
    case 'int32':
      return (i) => view.getInt32(i * 4, le);
    case 'uint64':
      return (i) => Number(view.getBigUint64(i * 8, le));
    case 'int64':
      return (i) => Number(view.getBigInt64(i * 8, le));
    case 'float32':
      return (i) => view.getFloat32(i * 4, le);
    case 'float64':
      return (i) => view.getFloat64(i * 8, le);
  }
}
