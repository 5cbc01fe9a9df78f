/**
 * Decoding a weight group: the shards of one manifest group concatenated are one byte stream
 * (a shard boundary may fall inside a tensor) holding the tensors in manifest order. Decoded as
 * TensorFlow.js's io.decodeWeights does: float32, int32 and bool as stored; uint8/uint16
 * quantized weights as q·scale + min (int32: rounded); float16 through tfjs's own table decoder,
 * so that every value is bit-identical to what tfjs loads.
 */
import { UserError } from '../errors';

export type WeightDtype = 'float32' | 'int32' | 'bool';

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; scale?: number; min?: number; [key: string]: unknown };
  group?: string;
}

export interface WeightTensor {
  name: string;
  shape: number[];
  dtype: WeightDtype;
  /** float32 values for float32, integers (exact) for int32 and bool. */
  data: Float32Array | Int32Array;
}

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Why a weight spec cannot be decoded, or undefined. */
export function unsupportedWeight(spec: WeightSpec): string | undefined {
  if (!spec || typeof spec.name !== 'string') return 'a weight without a name';
  if (!Array.isArray(spec.shape) || spec.shape.some((d) => !Number.isInteger(d) || d < 0)) return `shape ${JSON.stringify(spec.shape)} is not a list of sizes`;
  if (!['float32', 'int32', 'bool'].includes(spec.dtype)) return `dtype '${spec.dtype}' (supported: float32, int32, bool)`;
  const q = spec.quantization;
  if (q) {
    if (q.dtype === 'uint8' || q.dtype === 'uint16') {
      if (spec.dtype === 'bool') return `a ${q.dtype}-quantized bool weight`;
      if (typeof q.scale !== 'number' || typeof q.min !== 'number')
        return `${q.dtype} quantization without numeric 'min' and 'scale' (found ${Object.keys(q).join(', ')})`;
    } else if (q.dtype === 'float16') {
      if (spec.dtype !== 'float32') return `float16 quantization of a ${spec.dtype} weight (tfjs allows it for float32 only)`;
    } else {
      return `quantization dtype '${q.dtype}' (supported: uint8, uint16, float16)`;
    }
  }
  return undefined;
}

function byteLength(spec: WeightSpec): number {
  const n = sizeOf(spec.shape);
  const q = spec.quantization?.dtype;
  if (q === 'uint8') return n;
  if (q === 'uint16' || q === 'float16') return 2 * n;
  return spec.dtype === 'bool' ? n : 4 * n;
}

/** Decodes the tensors of one manifest group from its concatenated shards. `where` names the files for errors. */
export function decodeWeightGroup(stream: Uint8Array, specs: WeightSpec[], where: string): WeightTensor[] {
  const bad = specs.map((s) => [s, unsupportedWeight(s)] as const).filter(([, why]) => why);
  if (bad.length) {
    throw new UserError(
      `Unsupported weights in ${where}: ${bad.map(([s, why]) => `'${s?.name}': ${why}`).join('; ')}.`,
      'Convert the model again with tensorflowjs_converter (float32 or uint8/uint16/float16 quantization), or convert it to ONNX with tf2onnx.',
    );
  }
  const out: WeightTensor[] = [];
  let offset = 0;
  for (const spec of specs) {
    const len = byteLength(spec);
    if (offset + len > stream.length) {
      throw new UserError(
        `Weight '${spec.name}' needs bytes ${offset}..${offset + len} of ${where}, whose shards hold ${stream.length} bytes.`,
        'A weight shard is missing or truncated; copy the model files again.',
      );
    }
    // A copy: aligned for the typed-array views below.
    const bytes = stream.slice(offset, offset + len);
    offset += len;
    out.push({ name: spec.name, shape: [...spec.shape], ...decodeOne(spec, bytes) });
  }
  return out;
}

function decodeOne(spec: WeightSpec, bytes: Uint8Array): { dtype: WeightDtype; data: Float32Array | Int32Array } {
  const q = spec.quantization;
  const dtype = spec.dtype as WeightDtype;
  if (q) {
    if (q.dtype === 'float16') return { dtype, data: float16Decoder()(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2)) };
    const quantized = q.dtype === 'uint8' ? bytes : new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
    const scale = q.scale!,
      min = q.min!;
    if (dtype === 'int32') return { dtype, data: Int32Array.from(quantized, (v) => Math.round(v * scale + min)) };
    const values = new Float32Array(quantized.length);
    for (let i = 0; i < quantized.length; i++) values[i] = quantized[i] * scale + min;
    return { dtype, data: values };
  }
  if (dtype === 'float32') return { dtype, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) };
  if (dtype === 'int32') return { dtype, data: new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) };
  return { dtype, data: Int32Array.from(bytes) };
}

let decoder: ((h: Uint16Array) => Float32Array) | undefined;

/**
 * float16 → float32 as tfjs-core's getFloat16Decoder (the lookup tables of
 * http://www.fox-toolkit.org/ftp/fasthalffloatconversion.pdf), bit for bit.
 */
export function float16Decoder(): (h: Uint16Array) => Float32Array {
  if (decoder) return decoder;
  const mantissa = new Uint32Array(2048);
  for (let i = 1; i < 1024; i++) {
    let m = i << 13,
      e = 0;
    while ((m & 0x00800000) === 0) {
      e -= 0x00800000;
      m <<= 1;
    }
    m &= ~0x00800000;
    e += 0x38800000;
    mantissa[i] = m | e;
  }
  for (let i = 1024; i < 2048; i++) mantissa[i] = 0x38000000 + ((i - 1024) << 13);
  const exponent = new Uint32Array(64);
  exponent[31] = 0x47800000;
  exponent[32] = 0x80000000;
  exponent[63] = 0xc7800000;
  for (let i = 1; i < 31; i++) exponent[i] = i << 23;
  for (let i = 33; i < 63; i++) exponent[i] = 0x80000000 + ((i - 32) << 23);
  const offsets = new Uint32Array(64).fill(1024);
  offsets[0] = offsets[32] = 0;
  decoder = (h) => {
    const bits = new Uint32Array(h.length);
    for (let i = 0; i < h.length; i++) bits[i] = mantissa[offsets[h[i] >> 10] + (h[i] & 0x3ff)] + exponent[h[i] >> 10];
    return new Float32Array(bits.buffer);
  };
  return decoder;
}
