/**
 * Gradients of converted TensorFlow.js models: the project's generated input gradient of the
 * summed cross-entropy on the converted logits (buildGradientModel, loss 'ce-sum', run in
 * onnxruntime) equals tf.grad of the same loss on tfjs's own pre-softmax output, to 1e-4 relative.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { inferShapes } from '../../src/core/runtime/shapes';
import { buildGradientModel } from '../../src/core/onnx/autodiff';
import { loadModel } from '../../src/core/model/load';
import { encodeModel } from '../../src/core/onnx/proto';
import { createSession } from '../../src/core/runtime/session';
import { A, artifactsFromDir, placeholder, randomInput, saveLayersModel, tempDir, tf, tfReady, writeGraphModel, type GraphWeight } from './tfjs-helpers';

const L = tf.layers;
type Sym = tf.SymbolicTensor;

async function ourGradient(json: string, x: Float32Array, dims: number[], labels: number[]): Promise<Float32Array> {
  const loaded = loadModel(json);
  const shapes = await inferShapes(loaded);
  const gm = buildGradientModel(loaded.model, shapes, { kind: 'loss', loss: 'ce-sum' });
  const session = await createSession(encodeModel(gm.model), { ep: 'cpu', threads: 1 });
  try {
    const out = await session.run(
      {
        [gm.input]: new ort.Tensor('float32', x, dims),
        [gm.labels!]: new ort.Tensor('int64', BigInt64Array.from(labels, BigInt), [labels.length]),
      },
      [gm.grad],
    );
    return Float32Array.from(out[gm.grad].data as Float32Array);
  } finally {
    await session.release();
  }
}

/** d/dx Σᵢ −log softmax(logits(xᵢ))[yᵢ] in tfjs. */
function tfGradient(logits: (x: tf.Tensor) => tf.Tensor, x: Float32Array, dims: number[], labels: number[], classes: number): Float32Array {
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), classes);
  const loss = (t: tf.Tensor) => tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(logits(t)))));
  return tf.grad(loss)(tf.tensor(x, dims)).dataSync() as Float32Array;
}

function assertRelative(actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  let num = 0,
    den = 0;
  for (let i = 0; i < actual.length; i++) {
    num += (actual[i] - expected[i]) ** 2;
    den += expected[i] ** 2;
  }
  const rel = Math.sqrt(num / den);
  assert.ok(den > 0 && rel <= tol, `${what}: relative L2 error ${rel.toExponential(2)} > ${tol}`);
}

function randomize(m: tf.LayersModel, seed: number): void {
  let s = seed;
  for (const layer of m.layers) {
    const ws = layer.getWeights();
    if (!ws.length) continue;
    layer.setWeights(
      ws.map((w, i) => {
        const v = randomInput(w.shape, s++, 0.5);
        return tf.tensor(layer.getClassName() === 'BatchNormalization' && i === ws.length - 1 ? v.map((a) => 0.5 + Math.abs(a)) : v, w.shape);
      }),
    );
  }
}

test('tfjs gradients: a CNN with batch norm and a softmax head (layers model)', async () => {
  await tfReady();
  const inp = tf.input({ shape: [8, 8, 2], name: 'image' });
  let h = L.conv2d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'conv1' }).apply(inp) as Sym;
  h = L.maxPooling2d({ poolSize: 2, name: 'pool1' }).apply(h) as Sym;
  h = L.conv2d({ filters: 5, kernelSize: 3, padding: 'same', name: 'conv2' }).apply(h) as Sym;
  h = L.batchNormalization({ name: 'bn' }).apply(h) as Sym;
  h = L.activation({ activation: 'elu', name: 'act' }).apply(h) as Sym;
  h = L.flatten({ name: 'flat' }).apply(h) as Sym;
  const logits = L.dense({ units: 6, name: 'logits' }).apply(h) as Sym;
  const probs = L.activation({ activation: 'softmax', name: 'probs' }).apply(logits) as Sym;
  const model = tf.model({ inputs: inp, outputs: probs });
  randomize(model, 1);
  const json = await saveLayersModel(model, tempDir('grad-cnn'));
  const dims = [3, 8, 8, 2],
    x = randomInput(dims, 2),
    labels = [0, 3, 5];
  const pre = tf.model({ inputs: inp, outputs: logits });
  const ours = await ourGradient(json, x, dims, labels);
  assertRelative(
    ours,
    tfGradient((t) => pre.apply(t) as tf.Tensor, x, dims, labels, 6),
    1e-4,
    'cnn',
  );
});

test('tfjs gradients: depthwise/separable convs, gelu and swish, a residual add and global pooling (functional)', async () => {
  await tfReady();
  const inp = tf.input({ shape: [7, 7, 3], name: 'image' });
  const a = L.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthMultiplier: 2, activation: 'swish' as never, name: 'dw' }).apply(inp) as Sym;
  const b = L.separableConv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'gelu' as never, name: 'sep' }).apply(inp) as Sym;
  const s = L.add({ name: 'res' }).apply([a, b]) as Sym;
  const p = L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool' }).apply(s) as Sym;
  const g = L.globalAveragePooling2d({ name: 'gap' }).apply(p) as Sym;
  const logits = L.dense({ units: 4, activation: 'softmax', name: 'head' }).apply(g) as Sym;
  const model = tf.model({ inputs: inp, outputs: logits });
  randomize(model, 5);
  const json = await saveLayersModel(model, tempDir('grad-func'));
  const dims = [2, 7, 7, 3],
    x = randomInput(dims, 6),
    labels = [1, 2];
  const gapModel = tf.model({ inputs: inp, outputs: g });
  const [k, bias] = model.getLayer('head').getWeights();
  const ours = await ourGradient(json, x, dims, labels);
  assertRelative(
    ours,
    tfGradient((t) => tf.add(tf.matMul(gapModel.apply(t) as tf.Tensor, k), bias), x, dims, labels, 4),
    1e-4,
    'functional',
  );
});

test('tfjs gradients: a graph model (_FusedConv2D, MaxPool, Reshape, _FusedMatMul, Softmax)', async () => {
  await tfReady();
  const n = (name: string, op: string, input: string[], attr: Record<string, unknown> = {}) => ({ name, op, input, attr });
  const conv = {
    T: A.type(),
    strides: A.ints([1, 1, 1, 1]),
    padding: A.s('SAME'),
    data_format: A.s('NHWC'),
    dilations: A.ints([1, 1, 1, 1]),
    fused_ops: A.strs(['BiasAdd', 'Relu']),
    num_args: A.i(1),
    explicit_paddings: { list: {} },
  };
  const nodes = [
    placeholder('x', [-1, 6, 6, 1]),
    n('conv/Relu', '_FusedConv2D', ['x', 'conv/kernel', 'conv/bias'], conv),
    n('pool', 'MaxPool', ['conv/Relu'], { ksize: A.ints([1, 2, 2, 1]), strides: A.ints([1, 2, 2, 1]), padding: A.s('VALID'), data_format: A.s('NHWC') }),
    n('flat', 'Reshape', ['pool', 'shape']),
    n('dense/BiasAdd', '_FusedMatMul', ['flat', 'dense/kernel', 'dense/bias'], {
      transpose_a: A.b(false),
      transpose_b: A.b(false),
      fused_ops: A.strs(['BiasAdd']),
      num_args: A.i(1),
    }),
    n('dense/Softmax', 'Softmax', ['dense/BiasAdd']),
  ];
  const w = (name: string, shape: number[], seed: number): GraphWeight => ({ name, shape, data: randomInput(shape, seed, 0.5) });
  const json = writeGraphModel(tempDir('grad-graph'), nodes, [
    w('conv/kernel', [3, 3, 1, 4], 1),
    w('conv/bias', [4], 2),
    { name: 'shape', shape: [2], dtype: 'int32', data: [-1, 36] },
    w('dense/kernel', [36, 5], 3),
    w('dense/bias', [5], 4),
  ]);
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifactsFromDir(json)));
  const dims = [2, 6, 6, 1],
    x = randomInput(dims, 9),
    labels = [4, 0];
  const ours = await ourGradient(json, x, dims, labels);
  assertRelative(
    ours,
    tfGradient((t) => model.execute({ x: t }, 'dense/BiasAdd') as tf.Tensor, x, dims, labels, 5),
    1e-4,
    'graph',
  );
});

test("tfjs gradients: where tfjs's own CPU gradient is wrong (nearest upsampling, AvgPool SAME), ours matches central differences of tfjs's forward", async () => {
  await tfReady();
  const inp = tf.input({ shape: [5, 5, 2], name: 'image' });
  let h = L.conv2d({ filters: 3, kernelSize: 1, name: 'mix' }).apply(inp) as Sym;
  h = L.upSampling2d({ size: [2, 2], name: 'up' }).apply(h) as Sym;
  h = L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'avg' }).apply(h) as Sym;
  h = L.flatten({ name: 'flat' }).apply(h) as Sym;
  const model = tf.model({ inputs: inp, outputs: L.dense({ units: 3, name: 'logits' }).apply(h) as Sym });
  randomize(model, 8);
  const json = await saveLayersModel(model, tempDir('grad-fd'));
  const dims = [2, 5, 5, 2],
    x = randomInput(dims, 3),
    labels = [2, 1];
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 3);
  const loss = (v: Float32Array) => tf.tidy(() => tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(model.predict(tf.tensor(v, dims)) as tf.Tensor)))).dataSync()[0]);
  const ours = await ourGradient(json, x, dims, labels);
  const h0 = 1e-2;
  const fd = Float32Array.from(x, (_, i) => {
    const a = x.slice(),
      b = x.slice();
    a[i] += h0;
    b[i] -= h0;
    return (loss(a) - loss(b)) / (2 * h0);
  });
  assertRelative(ours, fd, 2e-3, 'against central differences (float32 forward)');
  assert.ok(
    tfGradient((t) => model.apply(t) as tf.Tensor, x, dims, labels, 3).some((v, i) => Math.abs(v - fd[i]) > 1e-3),
    "tfjs's gradient still differs here (if this fails, tfjs was fixed: compare with it directly)",
  );
});
