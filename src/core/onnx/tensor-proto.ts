/** Reading and making ONNX TensorProtos: initializers, Constant values and attribute tensors. */
import { UserError } from '../errors';
import { sizeOf } from '../tensor';
import { DataType, type TensorProto } from './proto';

export type NumericArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;

const BYTES_PER_ELEMENT: Partial<Record<DataType, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.DOUBLE]: 8,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.INT16]: 2,
  [DataType.UINT16]: 2,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
};

export function elementCount(t: TensorProto): number {
  return sizeOf(t.dims ?? []);
}

export function dataTypeName(dt: number | undefined): string {
  return DataType[dt ?? 0] ?? `type ${dt}`;
}

/** Copies `bytes` into a fresh, aligned buffer (raw_data views may sit at any offset). */
function aligned(bytes: Uint8Array): ArrayBuffer {
  return new Uint8Array(bytes).buffer; // a copy: protobufjs hands out views into a shared pool
}

/**
 * The tensor's values as numbers (float32 for float types, float64 for the rest so that int64
 * shape constants and axes stay exact). External data must have been inlined by `loadModel`.
 */
export function tensorValues(t: TensorProto): Float32Array | Float64Array {
  const dt = t.dataType ?? DataType.UNDEFINED;
  if (t.dataLocation === 1) {
    throw new UserError(
      `Tensor '${t.name}' still points at external data.`,
      'Load the model with loadModel(), which reads external data from the model folder.',
    );
  }
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  if (raw) {
    const buf = aligned(raw);
    switch (dt) {
      case DataType.FLOAT:
        return new Float32Array(buf);
      case DataType.DOUBLE:
        return new Float64Array(buf);
      case DataType.INT32:
        return Float64Array.from(new Int32Array(buf));
      case DataType.INT64:
        return Float64Array.from(new BigInt64Array(buf), Number);
      case DataType.UINT8:
      case DataType.BOOL:
        return Float64Array.from(new Uint8Array(buf));
      case DataType.INT8:
        return Float64Array.from(new Int8Array(buf));
      case DataType.INT16:
        return Float64Array.from(new Int16Array(buf));
      case DataType.UINT16:
        return Float64Array.from(new Uint16Array(buf));
      case DataType.UINT32:
        return Float64Array.from(new Uint32Array(buf));
      case DataType.UINT64:
        return Float64Array.from(new BigUint64Array(buf), Number);
      case DataType.FLOAT16:
        return halfToFloat(new Uint16Array(buf));
    }
  } else {
    switch (dt) {
      case DataType.FLOAT:
        return Float32Array.from(t.floatData ?? []);
      case DataType.DOUBLE:
        return Float64Array.from(t.doubleData ?? []);
      case DataType.INT64:
        return Float64Array.from(t.int64Data ?? []);
      case DataType.UINT32:
      case DataType.UINT64:
        return Float64Array.from(t.uint64Data ?? []);
      case DataType.FLOAT16:
        return halfToFloat(Uint16Array.from(t.int32Data ?? []));
      case DataType.INT32:
      case DataType.INT16:
      case DataType.INT8:
      case DataType.UINT16:
      case DataType.UINT8:
      case DataType.BOOL:
        return Float64Array.from(t.int32Data ?? []);
    }
  }
  throw new UserError(`Tensor '${t.name}' has data type ${dataTypeName(dt)}, which this tool cannot read.`);
}

export function tensorFloat32(t: TensorProto): Float32Array {
  const v = tensorValues(t);
  return v instanceof Float32Array ? v : Float32Array.from(v);
}

/** Number of bytes a tensor's stored data takes (for parameter counts and sanity checks). */
export function storedByteLength(t: TensorProto): number {
  return elementCount(t) * (BYTES_PER_ELEMENT[(t.dataType ?? 0) as DataType] ?? 0);
}

function halfToFloat(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const x = h[i],
      sign = x & 0x8000 ? -1 : 1,
      exp = (x >> 10) & 0x1f,
      frac = x & 0x3ff;
    out[i] = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

export function floatTensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  const values = data instanceof Float32Array ? data : Float32Array.from(data);
  if (values.length !== sizeOf(dims)) throw new Error(`floatTensor ${name}: ${values.length} values for dims [${dims}]`);
  return {
    name,
    dims: [...dims],
    dataType: DataType.FLOAT,
    rawData: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
  };
}

export function int64Tensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  const values = BigInt64Array.from(Array.from(data, (v) => BigInt(v)));
  if (values.length !== sizeOf(dims)) throw new Error(`int64Tensor ${name}: ${values.length} values for dims [${dims}]`);
  return { name, dims: [...dims], dataType: DataType.INT64, rawData: new Uint8Array(values.buffer) };
}
