/** NumPy .npy files (format versions 1.0, 2.0 and 3.0). */
import { UserError } from '../errors';
import { NPY_MAGIC, hexPrefix, startsWith } from './bytes';
import { decodeArray, type DType, type NdArray } from './ndarray';

/** NumPy type characters (kind + item size) we can read. */
const NPY_DTYPES: Record<string, DType> = {
  u1: 'uint8',
  i1: 'int8',
  u2: 'uint16',
  i2: 'int16',
  u4: 'uint32',
  i4: 'int32',
  u8: 'uint64',
  i8: 'int64',
  f4: 'float32',
  f8: 'float64',
};

export interface NpyHeader {
  dtype: DType;
  shape: number[];
  dataOffset: number;
}

export function parseNpy(bytes: Uint8Array, path: string): NdArray {
  const { dtype, shape, dataOffset } = parseNpyHeader(bytes, path);
  return decodeArray(bytes, dataOffset, shape, dtype, true, path);
}

/** Header only, so NPZ archives can pick their arrays before decoding any data. */
export function parseNpyHeader(bytes: Uint8Array, path: string): NpyHeader {
  if (!startsWith(bytes, NPY_MAGIC)) {
    throw new UserError(
      `${path} is not a .npy file: expected magic bytes 93 4e 55 4d 50 59 ("\\x93NUMPY"), found ${hexPrefix(bytes, 6)}.`,
      'Save the array with numpy.save().',
    );
  }
  const { header, dataOffset } = readHeader(bytes, path);
  const dtype = parseDescr(header, path);
  if (/'fortran_order'\s*:\s*True/.test(header)) {
    throw new UserError(
      `${path} is stored in Fortran (column-major) order; expected fortran_order False.`,
      'Re-save it with numpy.save(path, numpy.ascontiguousarray(array)).',
    );
  }
  return { dtype, shape: parseShape(header, path), dataOffset };
}

function readHeader(bytes: Uint8Array, path: string): { header: string; dataOffset: number } {
  const major = bytes[6];
  if (major !== 1 && major !== 2 && major !== 3) {
    throw new UserError(`${path} uses .npy format version ${major}.${bytes[7]}; expected 1.0, 2.0 or 3.0.`, 'Re-save it with a current numpy.');
  }
  // Version 1 has a 2-byte header length, versions 2 and 3 a 4-byte one (both little-endian).
  const lenSize = major === 1 ? 2 : 4;
  const start = 8 + lenSize;
  if (bytes.length < start) throw truncatedHeader(path, start, bytes.length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, start);
  const headerLen = lenSize === 2 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (bytes.length < start + headerLen) throw truncatedHeader(path, start + headerLen, bytes.length);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  return { header, dataOffset: start + headerLen };
}

function truncatedHeader(path: string, needed: number, found: number): UserError {
  return new UserError(`${path} is truncated: its .npy header needs ${needed} bytes, found ${found}.`, 'The file is incomplete or corrupt; save it again.');
}

function parseDescr(header: string, path: string): DType {
  const m = /'descr'\s*:\s*'([<>|=])([a-z]\d+)'/.exec(header);
  if (!m) {
    throw new UserError(
      `${path} has an unsupported dtype: expected a simple numeric dtype (uint8, float32, ...), found header ${header.trim()}.`,
      'Structured arrays are not supported; save a plain numeric array.',
    );
  }
  const [, order, type] = m;
  const dtype = NPY_DTYPES[type];
  if (!dtype) {
    throw new UserError(
      `${path} has dtype '${order}${type}'; expected one of |u1, <f4, <f8 (images) or |u1, <i4, <i8 (labels).`,
      'Convert it with array.astype(numpy.float32) or array.astype(numpy.uint8) before saving.',
    );
  }
  if (order === '>' && dtype !== 'uint8' && dtype !== 'int8') {
    throw new UserError(
      `${path} is big-endian ('${order}${type}'); expected little-endian ('<${type}').`,
      "Convert it with array.astype(array.dtype.newbyteorder('<')) before saving.",
    );
  }
  return dtype;
}

function parseShape(header: string, path: string): number[] {
  const m = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!m) throw new UserError(`${path} has a malformed .npy header: no 'shape' entry in ${header.trim()}.`, 'Save the array with numpy.save().');
  return m[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => Number(s.replace(/L$/, '')));
}

/** A float32 array as .npy bytes (format 1.0, little-endian, C order). */
export function encodeNpyFloat32(data: Float32Array, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Magic (6) + version (2) + header length (2) + header + '\n', padded to a multiple of 64.
  const unpadded = 10 + header.length + 1;
  header = header + ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(NPY_MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}
