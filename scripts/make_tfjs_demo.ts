/**
 * Builds the TensorFlow.js demo models in demo/tfjs/ with pure @tensorflow/tfjs (no Python):
 *
 *   fashion-layers/  a layers model (conv → pool → conv → pool → flatten → dense → dense+softmax),
 *                    trained a few epochs on the 4,000 demo training images (demo/data), saved as
 *                    model.save() writes it: model.json + one float32 weight shard.
 *   fashion-graph/   the same trained weights as a graph model (format "graph-model"), its
 *                    model.json written by hand the way tensorflowjs_converter writes a Keras
 *                    model: TF op names (_FusedConv2D, MaxPool, Reshape, _FusedMatMul, Softmax,
 *                    Identity), base64 attribute strings, a signature, and float16-quantized
 *                    weights in two shards.
 *
 *   node --import tsx scripts/make_tfjs_demo.ts [--epochs 5] [--seed 7]
 *
 * Deterministic for a given seed (seeded initializers, a seeded shuffle, no dropout). Prints the
 * tfjs test accuracy of both models on the first 500 demo test images.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, preprocess } from '../src/core/data';
import { Rng } from '../src/core/random';

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'demo', 'tfjs');
const DATA = path.join(ROOT, 'demo', 'data');
const SPEC = { layout: 'NHWC' as const, channels: 1, height: 28, width: 28 };

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function images(file: string, labels: string, limit?: number) {
  const raw = await loadDataset({ path: path.join(DATA, file), labelsPath: path.join(DATA, labels), limit });
  return { x: preprocess(raw, SPEC), y: raw.labels!, count: raw.count };
}

function buildModel(seed: number): tf.Sequential {
  let s = seed;
  const init = () => tf.initializers.glorotUniform({ seed: s++ });
  const m = tf.sequential({ name: 'fashion_tfjs' });
  m.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, activation: 'relu', kernelInitializer: init(), name: 'conv1' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }));
  m.add(tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu', kernelInitializer: init(), name: 'conv2' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }));
  m.add(tf.layers.flatten({ name: 'flatten' }));
  m.add(tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: init(), name: 'fc1' }));
  m.add(tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(), name: 'probs' }));
  return m;
}

function writeFiles(dir: string, json: object, shards: { name: string; bytes: Uint8Array }[]): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'model.json'), `${JSON.stringify(json)}\n`);
  for (const s of shards) writeFileSync(path.join(dir, s.name), s.bytes);
}

async function saveLayers(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      writeFiles(
        dir,
        {
          format: 'layers-model',
          generatedBy: a.generatedBy,
          convertedBy: null,
          modelTopology: a.modelTopology,
          weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: a.weightSpecs }],
        },
        [{ name: 'group1-shard1of1.bin', bytes: new Uint8Array(a.weightData as ArrayBuffer) }],
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

/** float32 → float16 bits (round to nearest even), as tensorflowjs_converter's --quantize_float16 stores them. */
function toHalf(v: number): number {
  const x = new Uint32Array(new Float32Array([v]).buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 112;
  let mant = x & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp,
      half = mant >>> shift,
      rem = mant & ((1 << shift) - 1),
      mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  if (exp >= 31) return sign | 0x7c00;
  const r = mant & 0x1fff;
  let h = sign | (exp << 10) | (mant >>> 13);
  if (r > 0x1000 || (r === 0x1000 && h & 1)) h++;
  return h;
}

/** The trained weights as a graph model, written as tensorflowjs_converter writes a Keras model. */
function saveGraph(model: tf.LayersModel, dir: string): void {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const ints = (v: number[]) => ({ list: { i: v.map(String) } });
  const T = { type: 'DT_FLOAT' };
  const scope = 'StatefulPartitionedCall/fashion_tfjs';
  const weights: { name: string; shape: number[]; values: Float32Array; dtype?: 'int32' }[] = [];
  const constNode = (name: string, dtype = 'DT_FLOAT') => ({
    name,
    op: 'Const',
    attr: { value: { tensor: { dtype, tensorShape: {} } }, dtype: { type: dtype } },
  });
  const w = (layer: string, i: number, name: string) => {
    const t = model.getLayer(layer).getWeights()[i];
    weights.push({ name, shape: t.shape, values: t.dataSync() as Float32Array });
    return name;
  };
  const conv = (layer: string, input: string) => ({
    name: `${scope}/${layer}/Relu`,
    op: '_FusedConv2D',
    input: [input, w(layer, 0, `${scope}/${layer}/Conv2D/ReadVariableOp`), w(layer, 1, `${scope}/${layer}/BiasAdd/ReadVariableOp`)],
    device: '/device:CPU:0',
    attr: {
      T,
      num_args: { i: '1' },
      data_format: { s: b64('NHWC') },
      padding: { s: b64('VALID') },
      strides: ints([1, 1, 1, 1]),
      dilations: ints([1, 1, 1, 1]),
      fused_ops: { list: { s: [b64('BiasAdd'), b64('Relu')] } },
      epsilon: { f: 0 },
      explicit_paddings: { list: {} },
      use_cudnn_on_gpu: { b: true },
      leakyrelu_alpha: { f: 0.2 },
    },
  });
  const pool = (layer: string, input: string) => ({
    name: `${scope}/${layer}/MaxPool`,
    op: 'MaxPool',
    input: [input],
    attr: {
      T,
      data_format: { s: b64('NHWC') },
      padding: { s: b64('VALID') },
      ksize: ints([1, 2, 2, 1]),
      strides: ints([1, 2, 2, 1]),
      explicit_paddings: { list: {} },
    },
  });
  const dense = (layer: string, input: string, act: string[]) => ({
    name: `${scope}/${layer}/${act.length > 1 ? 'Relu' : 'BiasAdd'}`,
    op: '_FusedMatMul',
    input: [input, w(layer, 0, `${scope}/${layer}/MatMul/ReadVariableOp`), w(layer, 1, `${scope}/${layer}/BiasAdd/ReadVariableOp`)],
    device: '/device:CPU:0',
    attr: {
      T,
      transpose_a: { b: false },
      transpose_b: { b: false },
      num_args: { i: '1' },
      fused_ops: { list: { s: act.map(b64) } },
      epsilon: { f: 0 },
      leakyrelu_alpha: { f: 0.2 },
    },
  });
  const c1 = conv('conv1', 'conv1_input');
  const p1 = pool('pool1', c1.name);
  const c2 = conv('conv2', p1.name);
  const p2 = pool('pool2', c2.name);
  const shapeName = `${scope}/flatten/Const`;
  weights.push({ name: shapeName, shape: [2], values: new Float32Array(), dtype: 'int32' });
  const flat = { name: `${scope}/flatten/Reshape`, op: 'Reshape', input: [p2.name, shapeName], attr: { T, Tshape: { type: 'DT_INT32' } } };
  const d1 = dense('fc1', flat.name, ['BiasAdd', 'Relu']);
  const d2 = dense('probs', d1.name, ['BiasAdd']);
  const softmax = { name: `${scope}/probs/Softmax`, op: 'Softmax', input: [d2.name], attr: { T } };
  const identity = { name: 'Identity', op: 'Identity', input: [softmax.name], attr: { T } };
  const placeholder = {
    name: 'conv1_input',
    op: 'Placeholder',
    attr: { dtype: T, shape: { shape: { dim: [{ size: '-1' }, { size: '28' }, { size: '28' }, { size: '1' }] } } },
  };
  const nodes = [
    placeholder,
    ...weights.map((x) => constNode(x.name, x.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT')),
    c1,
    p1,
    c2,
    p2,
    flat,
    d1,
    d2,
    softmax,
    identity,
  ];

  // float16 weights (the int32 shape constant stays int32), in two shards split mid-tensor.
  const parts: Uint8Array[] = [];
  const specs = weights.map((x) => {
    if (x.dtype === 'int32') {
      parts.push(new Uint8Array(new Int32Array([-1, 400]).buffer));
      return { name: x.name, shape: x.shape, dtype: 'int32' };
    }
    parts.push(new Uint8Array(Uint16Array.from(x.values, toHalf).buffer));
    return { name: x.name, shape: x.shape, dtype: 'float32', quantization: { dtype: 'float16' } };
  });
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const half = Math.ceil(all.length / 2) + 1; // odd: the boundary falls inside a tensor
  const signature = {
    inputs: {
      conv1_input: { name: 'conv1_input:0', dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size: '28' }, { size: '28' }, { size: '1' }] } },
    },
    outputs: { probs: { name: 'Identity:0', dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size: '10' }] } } },
  };
  writeFiles(
    dir,
    {
      format: 'graph-model',
      generatedBy: '2.15.0',
      convertedBy: 'scripts/make_tfjs_demo.ts (written as TensorFlow.js Converter v4.22.0 writes it)',
      signature,
      modelTopology: { node: nodes, library: {}, versions: { producer: 1645 } },
      weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: specs }],
    },
    [
      { name: 'group1-shard1of2.bin', bytes: all.subarray(0, half) },
      { name: 'group1-shard2of2.bin', bytes: all.subarray(half) },
    ],
  );
}

function accuracy(probs: tf.Tensor, labels: Int32Array): number {
  const pred = Array.from(probs.argMax(-1).dataSync());
  return pred.reduce<number>((s, p, i) => s + (p === labels[i] ? 1 : 0), 0) / labels.length;
}

async function main(): Promise<void> {
  const epochs = flag('epochs', 5),
    seed = flag('seed', 7);
  await tf.setBackend('cpu');
  const train = await images('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', flag('train-limit', 4000));
  const test = await images('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', 500);
  // A seeded shuffle (fit's own shuffle draws from Math.random).
  const order = [...Array(train.count).keys()];
  const rng = new Rng(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const xs = new Float32Array(train.x.length),
    ys = new Int32Array(train.count);
  order.forEach((src, dst) => {
    xs.set(train.x.subarray(src * 784, (src + 1) * 784), dst * 784);
    ys[dst] = train.y[src];
  });
  const model = buildModel(seed);
  model.compile({ optimizer: tf.train.adam(2e-3), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const t0 = performance.now();
  await model.fit(tf.tensor4d(xs, [train.count, 28, 28, 1]), tf.oneHot(tf.tensor1d(ys, 'int32'), 10), {
    epochs,
    batchSize: 32,
    shuffle: false,
    verbose: 0,
    callbacks: {
      onEpochEnd: async (e, logs) => console.log(`epoch ${e + 1}/${epochs}: loss ${logs!.loss.toFixed(4)}, accuracy ${(logs!.acc as number).toFixed(4)}`),
    },
  });
  console.log(`trained in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const layersDir = path.join(OUT, 'fashion-layers'),
    graphDir = path.join(OUT, 'fashion-graph');
  await saveLayers(model, layersDir);
  saveGraph(model, graphDir);
  const xt = tf.tensor4d(test.x, [test.count, 28, 28, 1]);
  console.log(
    `tfjs accuracy on the first ${test.count} demo test images: layers model ${(100 * accuracy(model.predict(xt) as tf.Tensor, test.y)).toFixed(1)}%`,
  );
  const graph = await tf.loadGraphModel(tf.io.fromMemory(await readBack(graphDir)));
  console.log(`  graph model (float16 weights) ${(100 * accuracy(graph.predict(xt) as tf.Tensor, test.y)).toFixed(1)}%`);
  console.log(`wrote ${path.relative(ROOT, layersDir)} and ${path.relative(ROOT, graphDir)}`);
}

async function readBack(dir: string): Promise<tf.io.ModelArtifacts> {
  const { readFileSync } = await import('node:fs');
  const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const bufs = json.weightsManifest[0].paths.map((p: string) => readFileSync(path.join(dir, p)));
  const data = Buffer.concat(bufs);
  return {
    modelTopology: json.modelTopology,
    format: json.format,
    weightSpecs: json.weightsManifest[0].weights,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
    signature: json.signature,
  };
}

void main().catch((e) => {
  console.error(e);
  process.exit(1);
});
