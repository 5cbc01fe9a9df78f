/**
 * Training on onnxruntime: one fused training step (forward, loss, parameter gradients and the
 * SGD-momentum / Adam / AdamW update with weight decay in one run) against the same steps in
 * PyTorch (test/fixtures/train-step-reference.json, from scripts/reference_train_step.py) to 1e-5;
 * the trainer's mini-batches, seeding, early stopping on a held-out split, cancellation and the
 * fitted ONNX artifact against a plain-JS forward pass.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { isCancelled } from '../../src/core/cancel';
import { UserError } from '../../src/core/errors';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { encodeModel } from '../../src/core/onnx/proto';
import { Rng } from '../../src/core/random';
import {
  buildTrainStep,
  permutation,
  trainableInitializers,
  denseForward,
  denseModel,
  fans,
  fitDense,
  glorotUniform,
  initDense,
  initialValues,
  Trainer,
  trainModel,
  type Optimizer,
  type TrainingLoss,
} from '../../src/core/train';
import { ROOT } from '../helpers/cli';
import { shapesOf } from '../helpers/gradcheck';

interface FixtureStep {
  x: number[];
  target: number[];
  rows: number;
  loss: number;
  params: number[][];
  state: Record<string, number[]>[];
}

interface FixtureCase {
  name: string;
  net: 'mlp' | 'cnn';
  loss: 'mse' | 'softmax-ce';
  lr: number;
  optimizer: Optimizer;
  paramShapes: number[][];
  sampleShape: number[];
  outputSize: number;
  init: number[][];
  steps: FixtureStep[];
}

const fixture = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'train-step-reference.json'), 'utf8')) as { torch: string; cases: FixtureCase[] };

/** The fixture's network as ONNX, op by op as the PyTorch script writes it; parameters named p0, p1, … */
function fixtureModel(c: FixtureCase) {
  const b = new GraphBuilder();
  const p = c.paramShapes.map((dims, i) => {
    b.initializers.push({ name: `p${i}`, dims, dataType: 1, floatData: c.init[i] });
    return `p${i}`;
  });
  if (c.net === 'mlp') {
    const h = b.op('Tanh', [b.op('Add', [b.op('MatMul', ['x', p[0]]), p[1]])]);
    b.node('Add', [b.op('MatMul', [h, p[2]]), p[3]], {}, ['y']);
  } else {
    const pooled = b.op('MaxPool', [b.op('Relu', [b.op('Conv', ['x', p[0], p[1]], { pads: [1, 1, 1, 1] })])], { kernel_shape: [2, 2], strides: [2, 2] });
    b.node('Gemm', [b.op('Flatten', [pooled]), p[2], p[3]], { transB: 1 }, ['y']);
  }
  const graph = b.graph(c.net, [tensorValueInfo('x', ['N', ...c.sampleShape])], [tensorValueInfo('y', ['N', c.outputSize])]);
  return { model: makeModel(graph, 13), params: p };
}

function maxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
  return worst;
}

for (const c of fixture.cases) {
  test(`training step = PyTorch ${fixture.torch} to 1e-5: ${c.name}`, async () => {
    const { model, params } = fixtureModel(c);
    const trainer = await Trainer.create({
      model,
      shapes: await shapesOf(model),
      params,
      loss: { kind: c.loss },
      optimizer: c.optimizer,
      session: { ep: 'cpu', threads: 1 },
    });
    try {
      for (const [k, step] of c.steps.entries()) {
        const target = c.loss === 'mse' ? Float32Array.from(step.target) : BigInt64Array.from(step.target, (v) => BigInt(v));
        const loss = await trainer.trainBatch(Float32Array.from(step.x), target, step.rows, c.lr);
        assert.ok(Math.abs(loss - step.loss) <= 1e-5 * Math.max(1, Math.abs(step.loss)), `step ${k}: loss ${loss} vs ${step.loss}`);
        params.forEach((name, i) => {
          const err = maxError(trainer.parameters().get(name)!, step.params[i]);
          assert.ok(err <= 1e-5, `step ${k}: parameter ${name} differs by ${err.toExponential(2)}`);
        });
        for (const slot of trainer.step.state) {
          const expected = step.state[params.indexOf(slot.param)][slot.role];
          assert.ok(expected, `PyTorch has a ${slot.role} state for ${slot.param}`);
          const err = maxError(trainer.optimizerState().get(slot.name)!, expected);
          assert.ok(err <= 1e-5, `step ${k}: ${slot.role} of ${slot.param} differs by ${err.toExponential(2)}`);
        }
      }
      assert.equal(trainer.stepCount, c.steps.length);
    } finally {
      await trainer.release();
    }
  });
}

test('the step model is one ONNX graph of standard ops: parameters and state in, loss, parameters and state out', async () => {
  const { model, params } = fixtureModel(fixture.cases[2]);
  const step = buildTrainStep(model, await shapesOf(model), { params, loss: { kind: 'mse' }, optimizer: { kind: 'adam', weightDecay: 0.01 } });
  const g = step.model.graph!;
  assert.deepEqual(
    g.output!.map((o) => o.name),
    [step.loss, ...step.params.map((p) => p.next), ...step.state.map((s) => s.next)],
  );
  for (const name of [step.input, step.target, step.learningRate, step.step, ...params, ...step.state.map((s) => s.name)])
    assert.ok(
      g.input!.some((v) => v.name === name),
      `input ${name}`,
    );
  assert.equal(step.state.length, 2 * params.length);
  assert.ok(!(g.initializer ?? []).some((t) => params.includes(t.name!)), 'parameters are inputs, not initializers');
  assert.ok(
    g.node!.every((n) => !n.domain),
    'default-domain ops only',
  );
  // By default the weights and biases of Conv, Gemm, MatMul and the bias Adds are trained.
  assert.deepEqual(trainableInitializers(fixtureModel(fixture.cases[0]).model), ['p0', 'p1', 'p2', 'p3']);
  assert.deepEqual(trainableInitializers(fixtureModel(fixture.cases[4]).model), ['p0', 'p1', 'p2', 'p3']);
});

// ---------------------------------------------------------------------------------------------
// The trainer

/** y = sin(3·x₀) + x₁·x₂ + noise on [-1, 1]³: a smooth regression target for a small MLP. */
function regression(n: number, seed: number, noise = 0.05) {
  const rng = new Rng(seed);
  const x = rng.uniform(new Float32Array(n * 3), -1, 1);
  const target = new Float32Array(n);
  for (let i = 0; i < n; i++) target[i] = Math.sin(3 * x[i * 3]) + x[i * 3 + 1] * x[i * 3 + 2] + noise * rng.normal();
  return { x, target, n };
}

const mlpLayers = (seed: number, hidden = 16) =>
  initDense(
    3,
    [
      { units: hidden, activation: 'tanh' },
      { units: 1, activation: 'linear' },
    ],
    new Rng(seed),
    'glorot-uniform',
  );

test('the trainer fits a regression: the loss curve falls, seeded runs are identical, the artifact is the trained ONNX model', async () => {
  const data = regression(256, 1);
  const run = (seed: number) =>
    trainModel({
      ...denseModel(mlpLayers(3)),
      loss: { kind: 'mse' },
      optimizer: { kind: 'adam' },
      data,
      epochs: 40,
      batchSize: 32,
      learningRate: 0.03,
      rng: seed,
      session: { ep: 'cpu', threads: 1 },
    });
  const a = await run(5);
  const b = await run(5);
  const c = await run(6);
  assert.equal(a.history.loss.length, 40);
  assert.ok(a.history.loss[39] < 0.25 * a.history.loss[0], `loss ${a.history.loss.map((v) => v.toFixed(3)).join(' → ')}`);
  assert.equal(a.steps, 40 * 8);
  assert.deepEqual(Buffer.from(encodeModel(a.model)), Buffer.from(encodeModel(b.model)), 'same seed, same weights');
  assert.notDeepEqual(Buffer.from(encodeModel(a.model)), Buffer.from(encodeModel(c.model)), 'another shuffle, other weights');
  assert.equal(a.provider, 'cpu');
  // The fitted artifact: the forward model with the trained weights as initializers, run by onnxruntime,
  // equals the same dense stack in plain JS with the trained parameters.
  const shape = mlpLayers(3);
  const layers = shape.map((l, i) => ({ ...l, w: a.params.get(`dense${i}_w`)!, b: a.params.get(`dense${i}_b`)! }));
  const s = await ort.InferenceSession.create(encodeModel(a.model));
  const out = (await s.run({ x: new ort.Tensor('float32', data.x.subarray(0, 30), [10, 3]) })).y.data as Float32Array;
  await s.release();
  const js = denseForward(layers, data.x, 10);
  for (let i = 0; i < 10; i++) assert.ok(Math.abs(out[i] - js[i]) < 1e-5, `${out[i]} vs ${js[i]}`);
});

test('early stopping on a held-out split stops when the held-out loss stops improving and restores the best epoch', async () => {
  // Few noisy samples, a wide network and a large step: the held-out loss turns up quickly.
  const data = regression(48, 2, 0.5);
  const trainer = await Trainer.create({
    ...denseModel(mlpLayers(4, 64)),
    loss: { kind: 'mse' },
    optimizer: { kind: 'adam' },
    session: { ep: 'cpu', threads: 1 },
  });
  try {
    const epochs: number[] = [];
    const fit = await trainer.fit({
      data,
      epochs: 200,
      batchSize: 8,
      learningRate: 0.03,
      rng: 1,
      validation: { fraction: 0.25 },
      earlyStopping: { patience: 3 },
      onEpoch: (r) => epochs.push(r.epoch),
    });
    assert.ok(fit.stoppedEarly, `stopped early (${fit.epochs} epochs, held-out ${fit.history.validationLoss.map((v) => v.toFixed(3)).join(' ')})`);
    assert.equal(fit.epochs, fit.bestEpoch + 4);
    assert.deepEqual(
      epochs,
      Array.from({ length: fit.epochs }, (_, i) => i),
    );
    const best = Math.min(...fit.history.validationLoss);
    assert.equal(fit.history.validationLoss[fit.bestEpoch], best);
    // The parameters held now are the best epoch's: the held-out split (the seeded permutation's last quarter) scores `best`.
    const order = Array.from(permutation(48, new Rng(1).fork('validation-split'))).slice(36);
    const held = {
      x: Float32Array.from(order.flatMap((i) => Array.from(data.x.subarray(i * 3, i * 3 + 3)))),
      target: Float32Array.from(order, (i) => data.target[i]),
      n: 12,
    };
    assert.ok(Math.abs((await trainer.evaluate(held)) - best) < 1e-6);
  } finally {
    await trainer.release();
  }
});

test('training is cancellable between batches (CancelledError) and refuses bad data', async () => {
  const data = regression(512, 3);
  const controller = new AbortController();
  let batches = 0;
  const cancelled = trainModel({
    ...denseModel(mlpLayers(1)),
    loss: { kind: 'mse' },
    optimizer: { kind: 'sgd', momentum: 0.9 },
    data,
    epochs: 50,
    batchSize: 16,
    learningRate: 0.01,
    signal: controller.signal,
    what: 'Training the test network',
    corrupt: () => {
      if (++batches === 5) controller.abort(); // mid-epoch
    },
  });
  await assert.rejects(cancelled, (e: Error) => isCancelled(e) && /Training the test network was cancelled/.test(e.message));
  assert.equal(batches, 5);
  await assert.rejects(
    trainModel({
      ...denseModel(mlpLayers(1)),
      loss: { kind: 'mse' },
      optimizer: { kind: 'adam' },
      data: { x: data.x, n: 512 },
      epochs: 1,
      batchSize: 8,
      learningRate: 0.1,
    }),
    UserError,
  );
  await assert.rejects(
    trainModel({
      ...denseModel(mlpLayers(1)),
      loss: { kind: 'softmax-ce' },
      optimizer: { kind: 'adam' },
      data: { ...data },
      epochs: 1,
      batchSize: 8,
      learningRate: 0.1,
    }),
    /softmax cross-entropy|integer labels|classes/,
  );
});

test('seeded initialisation: Glorot-uniform limits and fans as Keras, normalisation scales 1, biases 0, one stream per tensor', async () => {
  assert.deepEqual(fans([784, 256]), { fanIn: 784, fanOut: 256 });
  assert.deepEqual(fans([32, 16, 3, 3]), { fanIn: 144, fanOut: 288 });
  const w = glorotUniform([784, 256], new Rng(0));
  const limit = Math.sqrt(6 / (784 + 256));
  assert.ok(w.every((v) => Math.abs(v) <= limit));
  assert.ok(w.reduce((a, v) => Math.max(a, v), -Infinity) > 0.99 * limit && w.reduce((a, v) => Math.min(a, v), Infinity) < -0.99 * limit);
  const b = new GraphBuilder();
  const conv = b.floatConst('conv', [4, 2, 3, 3], new Float32Array(72));
  const scale = b.floatConst('scale', [4], new Float32Array(4));
  const shift = b.floatConst('shift', [4], new Float32Array(4).fill(7));
  b.node(
    'BatchNormalization',
    [b.op('Conv', ['x', conv]), scale, shift, b.floatConst('m', [4], new Float32Array(4)), b.floatConst('v', [4], new Float32Array(4).fill(1))],
    {},
    ['y'],
  );
  const model = makeModel(b.graph('bn', [tensorValueInfo('x', ['N', 2, 5, 5])], [tensorValueInfo('y', ['N', 4, 3, 3])]), 13);
  const init = initialValues(model, [conv, scale, shift], new Rng(3));
  assert.deepEqual(Array.from(init.get(scale)!), [1, 1, 1, 1]);
  assert.deepEqual(Array.from(init.get(shift)!), [0, 0, 0, 0]);
  assert.deepEqual(init.get(conv), glorotUniform([4, 2, 3, 3], new Rng(3).fork(conv)));
  assert.deepEqual(initialValues(model, [conv], new Rng(3)).get(conv), init.get(conv), 'independent of the other tensors');
});

test('a softmax classifier trains with integer labels; fitDense reports the loss before and after', async () => {
  // Three Gaussian blobs in 2-D.
  const rng = new Rng(7);
  const n = 300;
  const x = new Float32Array(n * 2);
  const labels = new Int32Array(n);
  const centres = [
    [1, 0],
    [-0.5, 0.9],
    [-0.5, -0.9],
  ];
  for (let i = 0; i < n; i++) {
    labels[i] = i % 3;
    x[i * 2] = centres[i % 3][0] + 0.3 * rng.normal();
    x[i * 2 + 1] = centres[i % 3][1] + 0.3 * rng.normal();
  }
  const loss: TrainingLoss = { kind: 'softmax-ce' };
  const fit = await fitDense({
    layers: initDense(
      2,
      [
        { units: 8, activation: 'relu' },
        { units: 3, activation: 'linear' },
      ],
      new Rng(1),
      'he-uniform',
    ),
    loss,
    optimizer: { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
    data: { x, target: labels, n },
    epochs: 10,
    batchSize: 30,
    learningRate: 0.05,
    rng: 2,
    evaluate: true,
    session: { ep: 'auto', threads: 1 },
  });
  assert.ok(fit.finalLoss! < 0.3 * fit.initialLoss!, `loss ${fit.initialLoss} → ${fit.finalLoss}`);
  const logits = denseForward(fit.layers, x, n);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.from(logits.subarray(i * 3, i * 3 + 3));
    if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
  }
  assert.ok(correct / n > 0.9, `training accuracy ${correct / n}`);
  assert.ok(['cpu', 'cuda'].includes(fit.provider));
});
