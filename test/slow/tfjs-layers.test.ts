/**
 * TensorFlow.js layers models → ONNX: every supported Keras layer class in a small model built
 * here with @tensorflow/tfjs, saved through tf.io, converted by loadModel and run in onnxruntime,
 * must give what tfjs's own predict gives on random inputs (to 1e-4). The softmax drop, shared
 * layers, names and layouts are checked on the converted graph.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadModel } from '../../src/core/model/load';
import { assertClose, randomInput, runConverted, saveLayersModel, tempDir, tf, tfReady } from './tfjs-helpers';

type Sym = tf.SymbolicTensor;

interface Case {
  name: string;
  /** Per-sample input shape (NHWC). */
  input: number[];
  /** Layers applied in sequence to the input (a Sequential-like chain inside a functional model). */
  layers?: () => tf.layers.Layer[];
  /** Or a whole model from the input tensor. */
  build?: (x: Sym) => Sym | Sym[];
  /** Set weights after building (e.g. non-trivial BatchNormalization statistics). */
  prepare?: (m: tf.LayersModel) => void;
  tol?: number;
  scale?: number;
}

const L = tf.layers;

function randomizeAll(m: tf.LayersModel, seed: number): void {
  let s = seed;
  for (const layer of m.layers) {
    const ws = layer.getWeights();
    if (!ws.length) continue;
    layer.setWeights(
      ws.map((w) => {
        const name = (w as tf.Tensor & { name?: string }).name ?? '';
        const v = randomInput(w.shape, s++, 0.5);
        if (/variance/.test(name))
          return tf.tensor(
            v.map((x) => 0.5 + Math.abs(x)),
            w.shape,
          );
        return tf.tensor(v, w.shape);
      }),
    );
  }
}

async function check(c: Case): Promise<void> {
  await tfReady();
  const inp = tf.input({ shape: c.input, name: 'image' });
  let out: Sym | Sym[];
  if (c.build) out = c.build(inp);
  else out = c.layers!().reduce<Sym>((x, layer) => layer.apply(x) as Sym, inp);
  const model = tf.model({ inputs: inp, outputs: out });
  randomizeAll(model, 7);
  c.prepare?.(model);
  const dir = tempDir(c.name.replace(/\W+/g, '_'));
  const json = await saveLayersModel(model, dir);
  const dims = [3, ...c.input];
  const x = randomInput(dims, 42, c.scale ?? 1);
  const expected = Array.isArray(out) ? (model.predict(tf.tensor(x, dims)) as tf.Tensor[])[0] : (model.predict(tf.tensor(x, dims)) as tf.Tensor);
  const got = await runConverted(json, x, dims);
  assert.deepEqual(got.dims, expected.shape, `${c.name}: output shape`);
  assertClose(got.out, expected.dataSync(), c.tol ?? 1e-4, c.name);
}

const CASES: Case[] = [
  { name: 'Conv2D valid relu', input: [7, 7, 3], layers: () => [L.conv2d({ filters: 4, kernelSize: 3, activation: 'relu' })] },
  {
    name: 'Conv2D same stride 2 odd size (asymmetric pads)',
    input: [7, 8, 2],
    layers: () => [L.conv2d({ filters: 3, kernelSize: [3, 2], strides: 2, padding: 'same' })],
  },
  {
    name: 'Conv2D dilated, no bias',
    input: [9, 9, 2],
    layers: () => [L.conv2d({ filters: 3, kernelSize: 3, dilationRate: 2, useBias: false, activation: 'tanh' })],
  },
  {
    name: 'DepthwiseConv2D multiplier 2 same stride 2',
    input: [7, 7, 3],
    layers: () => [L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same', activation: 'relu6' })],
  },
  {
    name: 'SeparableConv2D',
    input: [8, 8, 3],
    layers: () => [L.separableConv2d({ filters: 5, kernelSize: 3, depthMultiplier: 2, padding: 'same', activation: 'elu' })],
  },
  { name: 'Conv2DTranspose valid stride 2', input: [4, 5, 3], layers: () => [L.conv2dTranspose({ filters: 2, kernelSize: 3, strides: 2 })] },
  {
    name: 'Conv2DTranspose same stride 2',
    input: [4, 5, 3],
    layers: () => [L.conv2dTranspose({ filters: 2, kernelSize: 3, strides: 2, padding: 'same', activation: 'sigmoid' })],
  },
  {
    name: 'Conv2DTranspose kernel smaller than stride',
    input: [3, 3, 2],
    layers: () => [L.conv2dTranspose({ filters: 2, kernelSize: 2, strides: 3, padding: 'valid' })],
  },
  {
    name: 'Conv2DTranspose same, kernel 1 stride 2',
    input: [3, 4, 2],
    layers: () => [L.conv2dTranspose({ filters: 2, kernelSize: 1, strides: 2, padding: 'same' })],
  },
  {
    name: 'Dense on rank 2 and rank 3',
    input: [5, 6],
    layers: () => [L.dense({ units: 4, activation: 'relu' }), L.flatten(), L.dense({ units: 3, useBias: false })],
  },
  {
    name: 'MaxPooling2D valid and same (odd)',
    input: [7, 7, 2],
    layers: () => [L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), L.maxPooling2d({ poolSize: 2, strides: 1 })],
  },
  {
    name: 'AveragePooling2D same excludes padding',
    input: [7, 6, 2],
    layers: () => [L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }), L.averagePooling2d({ poolSize: [2, 1] })],
  },
  { name: 'GlobalAveragePooling2D', input: [5, 5, 3], layers: () => [L.conv2d({ filters: 4, kernelSize: 3 }), L.globalAveragePooling2d({})] },
  { name: 'GlobalMaxPooling2D', input: [5, 5, 3], layers: () => [L.conv2d({ filters: 4, kernelSize: 3 }), L.globalMaxPooling2d({})] },
  { name: 'Flatten after conv keeps TF order', input: [4, 5, 2], layers: () => [L.conv2d({ filters: 3, kernelSize: 2 }), L.flatten(), L.dense({ units: 4 })] },
  {
    name: 'Reshape and Permute',
    input: [4, 6, 2],
    layers: () => [L.conv2d({ filters: 2, kernelSize: 1 }), L.reshape({ targetShape: [8, 6] }), L.permute({ dims: [2, 1] }), L.flatten()],
  },
  {
    name: 'Permute rank 4',
    input: [3, 4, 2],
    layers: () => [L.conv2d({ filters: 2, kernelSize: 1 }), L.permute({ dims: [3, 1, 2] }), L.conv2d({ filters: 2, kernelSize: 2 })],
  },
  ...[
    'relu',
    'relu6',
    'elu',
    'selu',
    'sigmoid',
    'hardSigmoid',
    'tanh',
    'softplus',
    'softsign',
    'swish',
    'mish',
    'gelu',
    'gelu_new',
    'linear',
    'softmax',
    'logSoftmax',
  ].map((a): Case => ({
    name: `Activation ${a}`,
    input: [4, 4, 3],
    scale: 3,
    layers: () => [L.conv2d({ filters: 3, kernelSize: 1 }), L.activation({ activation: a as never }), L.conv2d({ filters: 2, kernelSize: 1 })],
  })),
  { name: 'Dense with activation gelu', input: [6], layers: () => [L.dense({ units: 5, activation: 'gelu' as never }), L.dense({ units: 2 })] },
  { name: 'ReLU maxValue', input: [4, 4, 2], scale: 8, layers: () => [L.reLU({ maxValue: 2.5 })] },
  {
    name: 'LeakyReLU, ELU, ThresholdedReLU',
    input: [4, 4, 2],
    scale: 3,
    layers: () => [L.leakyReLU({ alpha: 0.1 }), L.elu({}), L.thresholdedReLU({ theta: 0.3 })],
  },
  {
    name: 'PReLU per channel and per position',
    input: [4, 4, 3],
    layers: () => [L.conv2d({ filters: 3, kernelSize: 1 }), L.prelu({ sharedAxes: [1, 2] }), L.prelu({})],
  },
  { name: 'Softmax layer (axis 1 default)', input: [5], layers: () => [L.dense({ units: 4 }), L.softmax({}), L.dense({ units: 3 })] },
  {
    name: 'BatchNormalization after conv (NCHW) and after dense',
    input: [5, 5, 3],
    layers: () => [
      L.conv2d({ filters: 4, kernelSize: 3 }),
      L.batchNormalization({}),
      L.flatten(),
      L.dense({ units: 6 }),
      L.batchNormalization({ epsilon: 0.01 }),
    ],
  },
  {
    name: 'LayerNormalization',
    input: [4, 4, 3],
    layers: () => [L.conv2d({ filters: 4, kernelSize: 1 }), L.layerNormalization({}), L.flatten(), L.layerNormalization({ epsilon: 1e-5 })],
  },
  { name: 'LayerNormalization over H, W, C', input: [3, 4, 2], layers: () => [L.layerNormalization({ axis: [1, 2, 3] })] },
  {
    name: 'Dropout and noise layers are identities',
    input: [4, 4, 2],
    layers: () =>
      [
        L.dropout({ rate: 0.5 }),
        L.gaussianNoise({ stddev: 1 }),
        L.gaussianDropout({ rate: 0.3 }),
        L.alphaDropout({ rate: 0.2 }),
        L.spatialDropout1d({ rate: 0.2 } as never),
      ].slice(0, 4),
  },
  {
    name: 'ZeroPadding2D asymmetric and Cropping2D',
    input: [5, 6, 2],
    layers: () => [
      L.conv2d({ filters: 2, kernelSize: 1 }),
      L.zeroPadding2d({
        padding: [
          [1, 2],
          [0, 3],
        ],
      }),
      L.cropping2D({
        cropping: [
          [2, 0],
          [1, 2],
        ],
      }),
      L.conv2d({ filters: 2, kernelSize: 2 }),
    ],
  },
  {
    name: 'UpSampling2D nearest and bilinear',
    input: [3, 4, 2],
    layers: () => [L.conv2d({ filters: 2, kernelSize: 1 }), L.upSampling2d({ size: [2, 3] }), L.upSampling2d({ size: [2, 2], interpolation: 'bilinear' })],
  },
  { name: 'Rescaling', input: [4, 4, 3], layers: () => [L.rescaling({ scale: 1 / 255, offset: -0.5 } as never), L.conv2d({ filters: 2, kernelSize: 1 })] },
  {
    name: 'Add, Multiply, Average, Maximum, Minimum, Concatenate (functional)',
    input: [5, 5, 3],
    build: (x) => {
      const a = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'branch_a' }).apply(x) as Sym;
      const b = L.conv2d({ filters: 4, kernelSize: 1, name: 'branch_b' }).apply(x) as Sym;
      const c = L.conv2d({ filters: 4, kernelSize: 1, activation: 'relu', name: 'branch_c' }).apply(x) as Sym;
      const s = L.add({ name: 'sum' }).apply([a, b, c]) as Sym;
      const m = L.multiply({ name: 'prod' }).apply([a, b]) as Sym;
      const av = L.average({ name: 'avg' }).apply([s, m]) as Sym;
      const mx = L.maximum({ name: 'max' }).apply([av, c]) as Sym;
      const mn = L.minimum({ name: 'min' }).apply([mx, a]) as Sym;
      const cat = L.concatenate({ name: 'cat' }).apply([mn, x]) as Sym;
      const cat1 = L.concatenate({ axis: 1, name: 'cat_h' }).apply([cat, cat]) as Sym;
      return L.flatten({ name: 'flat' }).apply(cat1) as Sym;
    },
  },
  {
    name: 'a shared layer called twice',
    input: [6],
    build: (x) => {
      const shared = L.dense({ units: 6, activation: 'tanh', name: 'shared' });
      const once = shared.apply(x) as Sym;
      const twice = shared.apply(once) as Sym;
      return L.add({}).apply([once, twice]) as Sym;
    },
  },
];

for (const c of CASES) test(`tfjs layers: ${c.name}`, () => check(c));

test('tfjs layers: Sequential model, final softmax dropped, names and layout', async () => {
  await tfReady();
  const m = tf.sequential({ name: 'seq' });
  m.add(L.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, activation: 'relu', name: 'conv1' }));
  m.add(L.maxPooling2d({ poolSize: 2, name: 'pool1' }));
  m.add(L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv2' }));
  m.add(L.batchNormalization({ name: 'bn2' }));
  m.add(L.activation({ activation: 'relu', name: 'act2' }));
  m.add(L.flatten({ name: 'flatten' }));
  m.add(L.dense({ units: 5, activation: 'softmax', name: 'probs' }));
  randomizeAll(m, 3);
  const json = await saveLayersModel(m, tempDir('seq'));
  const loaded = loadModel(json);
  const g = loaded.model.graph!;
  const meta = Object.fromEntries((loaded.model.metadataProps ?? []).map((p) => [p.key, p.value]));
  assert.equal(meta['rlab.output'], 'logits (pre-softmax of layer probs)');
  assert.equal(g.output![0].name, 'probs');
  assert.ok(!g.node!.some((n) => n.opType === 'Softmax'), 'the final softmax is dropped');
  // The layer names are node and tensor names; one transpose in, one out.
  for (const name of ['conv1', 'pool1', 'conv2', 'bn2', 'act2', 'flatten', 'probs'])
    assert.ok(
      g.node!.some((n) => n.name === name && n.output![0] === name),
      `node ${name}`,
    );
  assert.equal(g.node!.filter((n) => n.opType === 'Transpose').length, 2);
  assert.equal(g.input![0].name, 'conv1_input');
  assert.deepEqual(
    g.input![0].type!.tensorType!.shape!.dim!.map((d) => d.dimValue ?? d.dimParam),
    ['batch', 8, 8, 1],
  );
  assert.ok((loaded.model.opsetImport![0].version ?? 0) >= 13);
  // Probabilities: softmax of the converted logits equals tfjs's output.
  const x = randomInput([4, 8, 8, 1], 5);
  const got = await runConverted(json, x, [4, 8, 8, 1]);
  const probs = tf.softmax(tf.tensor(got.out, [4, 5])).dataSync();
  assertClose(probs, (m.predict(tf.tensor(x, [4, 8, 8, 1])) as tf.Tensor).dataSync(), 1e-5, 'probabilities');
  // The logits equal tfjs's pre-softmax values (the dense layer's kernel and bias applied to flatten's output).
  const flat = tf.model({ inputs: m.inputs, outputs: m.getLayer('flatten').output as Sym }).predict(tf.tensor(x, [4, 8, 8, 1])) as tf.Tensor;
  const [k, b] = m.getLayer('probs').getWeights();
  assertClose(got.out, tf.add(tf.matMul(flat, k), b).dataSync(), 1e-4, 'logits');
});

test('tfjs layers: softmax as a separate layer, as a Softmax layer, and an average of softmaxes', async () => {
  await tfReady();
  const x = randomInput([2, 6], 9);
  // Activation('softmax') at the end: its input is the output.
  {
    const inp = tf.input({ shape: [6] });
    const d = L.dense({ units: 4, name: 'logits' }).apply(inp) as Sym;
    const m = tf.model({ inputs: inp, outputs: L.activation({ activation: 'softmax', name: 'sm' }).apply(d) as Sym });
    const json = await saveLayersModel(m, tempDir('act-softmax'));
    const loaded = loadModel(json);
    assert.equal(loaded.model.graph!.output![0].name, 'logits');
    assert.match(loaded.model.metadataProps!.find((p) => p.key === 'rlab.output')!.value!, /pre-softmax of layer sm/);
    const got = await runConverted(json, x, [2, 6]);
    assertClose(got.out, (tf.model({ inputs: inp, outputs: d }).predict(tf.tensor(x, [2, 6])) as tf.Tensor).dataSync(), 1e-5, 'logits');
  }
  // Softmax layer at the end.
  {
    const inp = tf.input({ shape: [6] });
    const d = L.dense({ units: 4, name: 'logits' }).apply(inp) as Sym;
    const m = tf.model({ inputs: inp, outputs: L.softmax({ name: 'sm' }).apply(d) as Sym });
    const loaded = loadModel(await saveLayersModel(m, tempDir('softmax-layer')));
    assert.equal(loaded.model.graph!.output![0].name, 'logits');
  }
  // An ensemble averaging two softmax heads: no pre-softmax tensor, so Log of the probabilities.
  {
    const inp = tf.input({ shape: [6] });
    const h1 = L.dense({ units: 4, activation: 'softmax', name: 'head1' }).apply(inp) as Sym;
    const h2 = L.dense({ units: 4, activation: 'softmax', name: 'head2' }).apply(inp) as Sym;
    const m = tf.model({ inputs: inp, outputs: L.average({ name: 'ensemble' }).apply([h1, h2]) as Sym });
    const json = await saveLayersModel(m, tempDir('ensemble'));
    const loaded = loadModel(json);
    assert.match(loaded.model.metadataProps!.find((p) => p.key === 'rlab.output')!.value!, /^log-probabilities/);
    const got = await runConverted(json, x, [2, 6]);
    assertClose(got.out, tf.log(m.predict(tf.tensor(x, [2, 6])) as tf.Tensor).dataSync(), 1e-5, 'log-probabilities');
  }
  // A model without softmax keeps its output.
  {
    const m = tf.sequential({ layers: [L.dense({ inputShape: [6], units: 3, name: 'scores' })] });
    const loaded = loadModel(await saveLayersModel(m, tempDir('no-softmax')));
    assert.match(loaded.model.metadataProps!.find((p) => p.key === 'rlab.output')!.value!, /own output/);
  }
});

/** Rewrites a saved model.json's topology (for Keras features tfjs itself lacks). */
function editTopology(json: string, edit: (layers: { class_name: string; config: Record<string, unknown> }[]) => void): void {
  const j = JSON.parse(readFileSync(json, 'utf8'));
  edit(j.modelTopology.config.layers);
  writeFileSync(json, JSON.stringify(j));
}

test("tfjs layers: BatchNormalization on a non-channel axis follows Keras (tfjs's CPU kernel would index the statistics by the last axis)", async () => {
  await tfReady();
  const m = tf.sequential({ layers: [L.batchNormalization({ inputShape: [4, 5, 2], axis: 1, scale: false, center: false, epsilon: 0.01, name: 'bn_h' })] });
  const mean = tf.tensor([0.5, -1, 2, 0.25]),
    variance = tf.tensor([1, 2, 0.5, 4]);
  m.layers[0].setWeights([mean, variance]);
  const x = randomInput([2, 4, 5, 2], 4);
  const got = await runConverted(await saveLayersModel(m, tempDir('bn-axis1')), x, [2, 4, 5, 2]);
  const expected = tf.div(tf.sub(tf.tensor(x, [2, 4, 5, 2]), mean.reshape([1, 4, 1, 1])), tf.sqrt(tf.add(variance.reshape([1, 4, 1, 1]), 0.01)));
  assertClose(got.out, expected.dataSync(), 1e-5, 'normalised along H');
});

test('tfjs layers: Keras-only forms (Subtract; ReLU with threshold and negative_slope) follow Keras semantics', async () => {
  await tfReady();
  const inp = tf.input({ shape: [5], name: 'v' });
  const a = L.dense({ units: 4, name: 'a' }).apply(inp) as Sym;
  const b = L.dense({ units: 4, name: 'b' }).apply(inp) as Sym;
  const diff = L.add({ name: 'diff' }).apply([a, b]) as Sym;
  const r = L.reLU({ name: 'r' }).apply(diff) as Sym;
  const m = tf.model({ inputs: inp, outputs: r });
  const json = await saveLayersModel(m, tempDir('keras-only'));
  editTopology(json, (layers) => {
    layers.find((l) => l.config.name === 'diff')!.class_name = 'Subtract';
    Object.assign(layers.find((l) => l.config.name === 'r')!.config, { max_value: 0.8, negative_slope: 0.1, threshold: 0.2 });
  });
  const x = randomInput([6, 5], 3, 2);
  const got = await runConverted(json, x, [6, 5]);
  const av = tf.model({ inputs: inp, outputs: a }).predict(tf.tensor(x, [6, 5])) as tf.Tensor;
  const bv = tf.model({ inputs: inp, outputs: b }).predict(tf.tensor(x, [6, 5])) as tf.Tensor;
  const d = tf.sub(av, bv);
  const expected = tf.where(tf.greaterEqual(d, 0.2), tf.minimum(d, 0.8), tf.mul(0.1, tf.sub(d, 0.2)));
  assertClose(got.out, expected.dataSync(), 1e-5, 'keras relu of a difference');
});

test('tfjs layers: Keras (Python) topology forms: class Functional, Keras 3 inbound nodes and dtype policies, scoped weight names', async () => {
  await tfReady();
  const inp = tf.input({ shape: [6, 6, 2], name: 'pixels' });
  const c = L.conv2d({ filters: 3, kernelSize: 3, name: 'conv2d' }).apply(inp) as Sym;
  const f = L.flatten({ name: 'flatten' }).apply(c) as Sym;
  const d = L.dense({ units: 4, name: 'dense' }).apply(f) as Sym;
  const model = tf.model({ inputs: inp, outputs: d });
  randomizeAll(model, 11);
  const json = await saveLayersModel(model, tempDir('keras3'));
  const j = JSON.parse(readFileSync(json, 'utf8'));
  j.modelTopology = { class_name: 'Functional', config: { ...j.modelTopology.config }, keras_version: '3.3.3', backend: 'tensorflow' };
  for (const l of j.modelTopology.config.layers) {
    l.config.dtype = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' } };
    if (l.class_name === 'InputLayer') {
      l.config.batch_shape = l.config.batch_input_shape;
      delete l.config.batch_input_shape;
    }
    l.inbound_nodes = l.inbound_nodes.map((call: [string, number, number][]) => ({
      args: call.map(([name, node, tensor]) => ({
        class_name: '__keras_tensor__',
        config: { shape: [null], dtype: 'float32', keras_history: [name, node, tensor] },
      })),
      kwargs: {},
    }));
  }
  for (const w of j.weightsManifest[0].weights) w.name = `functional/${w.name}`;
  writeFileSync(json, JSON.stringify(j));
  const x = randomInput([2, 6, 6, 2], 12);
  const got = await runConverted(json, x, [2, 6, 6, 2]);
  assertClose(got.out, (model.predict(tf.tensor(x, [2, 6, 6, 2])) as tf.Tensor).dataSync(), 1e-4, 'keras 3 form');
});

test('tfjs layers: unsupported layers and options are listed in one error, before any work', async () => {
  await tfReady();
  const m = tf.sequential();
  m.add(L.conv2d({ inputShape: [6, 6, 2], filters: 2, kernelSize: 2, name: 'ok_conv' }));
  m.add(L.reshape({ targetShape: [25, 2], name: 'seq' }));
  m.add(L.lstm({ units: 3, name: 'recurrent' }));
  m.add(L.dense({ units: 2, name: 'head' }));
  const json = await saveLayersModel(m, tempDir('unsupported'));
  editTopology(json, (layers) => {
    layers.push({ class_name: 'MyCustomLayer', config: { name: 'custom' } });
    (layers.find((l) => l.config.name === 'head')!.config as Record<string, unknown>).activation = 'weird_fn';
  });
  assert.throws(
    () => loadModel(json),
    (e: Error) => {
      assert.equal(e.name, 'UserError');
      assert.match(e.message, /layer 'recurrent': class LSTM is not supported/);
      assert.match(e.message, /layer 'custom': class MyCustomLayer is not supported/);
      assert.match(e.message, /layer 'head' \(Dense\): activation '"weird_fn"'/);
      assert.match(e.message, /tf2onnx/);
      assert.doesNotMatch(e.message, /ok_conv/);
      return true;
    },
  );
});

test('tfjs layers: a folder path works, the SHA-256 covers model.json and weights, and conversions are cached', async () => {
  await tfReady();
  const m = tf.sequential({ layers: [L.dense({ inputShape: [4], units: 3, name: 'd' })] });
  const dir = tempDir('folder');
  const json = await saveLayersModel(m, dir);
  const a = loadModel(dir),
    b = loadModel(json);
  assert.equal(a.sha256, b.sha256);
  assert.deepEqual(a.bytes, b.bytes);
  assert.notEqual(a.model, b.model, 'each caller gets its own ModelProto');
  const { createHash } = await import('node:crypto');
  const h = createHash('sha256')
    .update(readFileSync(json))
    .update(readFileSync(path.join(dir, 'group1-shard1of1.bin')))
    .digest('hex');
  assert.equal(a.sha256, h);
});
