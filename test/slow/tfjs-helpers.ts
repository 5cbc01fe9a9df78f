/**
 * Helpers of the TensorFlow.js converter tests: saving tfjs models to a folder as tf.io does
 * (model.json + weight shards, optionally split, quantized or with odd shard names), hand-written
 * graph models, running the converted ONNX model in onnxruntime, and comparisons.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import * as tf from '@tensorflow/tfjs';
import { loadModel } from '../../src/core/model/load';
import { createSession } from '../../src/core/runtime/session';
import { Rng } from '../../src/core/random';

export { tf };

let ready: Promise<void> | undefined;
/** tfjs on its pure-JS CPU backend, quietly. */
export function tfReady(): Promise<void> {
  ready ??= (async () => {
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
    await tf.ready();
  })();
  return ready;
}

let tempRoot: string | undefined;
/** A fresh folder under one per-process temporary root, removed when the process exits. */
export function tempDir(tag: string): string {
  if (!tempRoot) {
    const root = (tempRoot = mkdtempSync(path.join(tmpdir(), 'rlab-tfjs-')));
    process.on('exit', () => rmSync(root, { recursive: true, force: true }));
  }
  return mkdtempSync(path.join(tempRoot, `${tag}-`));
}

export interface SaveOptions {
  /** Split the weight bytes into this many shards (boundaries fall inside tensors). */
  shards?: number;
  /** Shard file names (default group1-shard{i}of{n}.bin). */
  shardName?: (i: number, n: number) => string;
  /** Quantize every float32 weight as tensorflowjs_converter does. */
  quantize?: 'uint8' | 'uint16' | 'float16';
}

/** Quantizes float32 values as tensorflowjs_converter's quantization.py does (affine min/scale, or float16). */
export function quantize(values: Float32Array, dtype: 'uint8' | 'uint16' | 'float16'): { bytes: Uint8Array; meta: Record<string, unknown> } {
  if (dtype === 'float16') {
    const h = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) h[i] = toHalf(values[i]);
    return { bytes: new Uint8Array(h.buffer), meta: { dtype: 'float16' } };
  }
  const levels = dtype === 'uint8' ? 255 : 65535;
  const min = Math.min(...values);
  const max = Math.max(...values) === min ? min + 1 : Math.max(...values);
  const scale = (max - min) / levels;
  const q = dtype === 'uint8' ? new Uint8Array(values.length) : new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) q[i] = Math.round((values[i] - min) / scale);
  return { bytes: new Uint8Array(q.buffer), meta: { dtype, min, scale } };
}

/** float32 → float16 bits, round to nearest even. */
function toHalf(v: number): number {
  const f32 = new Float32Array([v]);
  const x = new Uint32Array(f32.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  if (exp >= 31) return sign | 0x7c00;
  const r = mant & 0x1fff;
  let h = sign | (exp << 10) | (mant >>> 13);
  if (r > 0x1000 || (r === 0x1000 && h & 1)) h++;
  return h;
}

/** Writes model.json + shards for tfjs model artifacts. */
export function writeArtifacts(dir: string, artifacts: tf.io.ModelArtifacts, options: SaveOptions = {}): string {
  mkdirSync(dir, { recursive: true });
  let specs = artifacts.weightSpecs ?? [];
  let data: Uint8Array = new Uint8Array(artifacts.weightData ? (artifacts.weightData as ArrayBuffer) : new ArrayBuffer(0));
  if (options.quantize) {
    const parts: Uint8Array[] = [];
    let offset = 0;
    specs = specs.map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const bytes = data.slice(offset, offset + n * 4);
      offset += n * 4;
      if (s.dtype !== 'float32') {
        parts.push(bytes);
        return s;
      }
      const q = quantize(new Float32Array(bytes.buffer), options.quantize!);
      parts.push(q.bytes);
      return { ...s, quantization: q.meta as tf.io.WeightsManifestEntry['quantization'] };
    });
    data = concat(parts);
  }
  const n = options.shards ?? 1;
  const name = options.shardName ?? ((i: number, k: number) => `group1-shard${i + 1}of${k}.bin`);
  const size = Math.ceil(data.length / n);
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = name(i, n);
    writeFileSync(path.join(dir, p), data.subarray(i * size, Math.min(data.length, (i + 1) * size)));
    paths.push(p);
  }
  const json: Record<string, unknown> = {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: [{ paths, weights: specs }],
  };
  if (artifacts.signature) json.signature = artifacts.signature;
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  return path.join(dir, 'model.json');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Saves a tfjs layers model through a custom IOHandler and writes its files into `dir`. */
export async function saveLayersModel(model: tf.LayersModel, dir: string, options: SaveOptions = {}): Promise<string> {
  let out = '';
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      out = writeArtifacts(dir, artifacts, options);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return out;
}

/** Loads a model.json + shards from disk into tfjs (layers or graph), as tf.io would from files. */
export function artifactsFromDir(jsonPath: string): tf.io.ModelArtifacts {
  const json = JSON.parse(readFileSync(jsonPath, 'utf8'));
  const dir = path.dirname(jsonPath);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const g of json.weightsManifest ?? []) {
    specs.push(...g.weights);
    for (const p of g.paths) parts.push(new Uint8Array(readFileSync(path.join(dir, p))));
  }
  const data = concat(parts);
  return {
    modelTopology: json.modelTopology,
    format: json.format,
    weightSpecs: specs,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer,
    signature: json.signature,
  };
}

export interface GraphNodeJson {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, unknown>;
}

export interface GraphWeight {
  name: string;
  shape: number[];
  dtype?: 'float32' | 'int32';
  data: ArrayLike<number>;
}

/** Attribute helpers in TF's JSON form (strings base64, ints as strings). */
export const A = {
  s: (v: string) => ({ s: Buffer.from(v).toString('base64') }),
  i: (v: number) => ({ i: String(v) }),
  f: (v: number) => ({ f: v }),
  b: (v: boolean) => ({ b: v }),
  ints: (v: number[]) => ({ list: { i: v.map(String) } }),
  strs: (v: string[]) => ({ list: { s: v.map((x) => Buffer.from(x).toString('base64')) } }),
  type: (t = 'DT_FLOAT') => ({ type: t }),
  shape: (dims: number[]) => ({ shape: { dim: dims.map((d) => ({ size: String(d) })) } }),
};

/** A Placeholder node. */
export const placeholder = (name: string, shape: number[]): GraphNodeJson => ({ name, op: 'Placeholder', attr: { dtype: A.type(), shape: A.shape(shape) } });
/** A Const node whose value lives in the weights. */
export const constNode = (name: string, dtype = 'DT_FLOAT'): GraphNodeJson => ({
  name,
  op: 'Const',
  attr: { dtype: A.type(dtype), value: { tensor: { dtype } } },
});

/** Writes a hand-made graph model (model.json + one shard). Const nodes for the weights are added. */
export function writeGraphModel(
  dir: string,
  nodes: GraphNodeJson[],
  weights: GraphWeight[],
  extra: Record<string, unknown> = {},
  options: SaveOptions = {},
): string {
  const specs = weights.map((w) => ({ name: w.name, shape: w.shape, dtype: w.dtype ?? 'float32' }));
  const data = concat(weights.map((w) => new Uint8Array((w.dtype === 'int32' ? Int32Array.from(w.data) : Float32Array.from(w.data)).buffer)));
  const consts = weights.filter((w) => !nodes.some((n) => n.name === w.name)).map((w) => constNode(w.name, w.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT'));
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: { node: [...consts, ...nodes], library: {}, versions: { producer: 1395 } } as unknown as tf.io.ModelArtifacts['modelTopology'],
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'hand-written (test)',
    weightSpecs: specs,
    weightData: data.buffer as ArrayBuffer,
  };
  const json = writeArtifacts(dir, artifacts, options);
  if (Object.keys(extra).length) writeFileSync(json, JSON.stringify({ ...JSON.parse(readFileSync(json, 'utf8')), ...extra }));
  return json;
}

/** Runs the converted model (through loadModel) on x in onnxruntime; returns its first output. */
export async function runConverted(jsonPath: string, x: Float32Array, dims: number[]): Promise<{ out: Float32Array; dims: number[]; outputName: string }> {
  const loaded = loadModel(jsonPath);
  const session = await createSession(loaded.bytes, { ep: 'cpu', threads: 1 });
  try {
    const input = session.inputNames[0];
    const outputName = session.outputNames[0];
    const r = await session.run({ [input]: new ort.Tensor('float32', x, dims) }, [outputName]);
    return { out: Float32Array.from(r[outputName].data as Float32Array), dims: [...r[outputName].dims], outputName };
  } finally {
    await session.release();
  }
}

export function randomInput(dims: number[], seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

/** max |a − b| ≤ tol·max(1, |b|) elementwise. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  let worst = 0,
    at = -1;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i]));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: value ${at} is ${actual[at]}, tfjs gives ${expected[at]} (error ${worst.toExponential(2)} > ${tol})`);
}
