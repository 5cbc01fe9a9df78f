/**
 * The isometric head: training steps of its loss (cross-entropy plus the metric-preservation term
 * of arXiv:2211.01236) on onnxruntime against PyTorch (test/fixtures/isometric-step-reference.json,
 * from scripts/reference_isometric_step.py, which sums the term pair by pair); the tail read back
 * from Gemm layers (one with transB); the error for a tail that is not dense layers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { denseTail, isometricTrainingModel } from '../../src/core/defenses/isometric';
import { UserError } from '../../src/core/errors';
import { inspectModel } from '../../src/core/eval/model-session';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { cutModel, tensorValueInfo } from '../../src/core/onnx/cut';
import { floatTensor } from '../../src/core/onnx/tensor-proto';
import { Trainer } from '../../src/core/train';
import { DEMO_MODEL, ROOT } from '../helpers/cli';

interface Fixture {
  config: { inputs: number; hidden: number; classes: number; inputSize: number; weight: number; scale: number; learningRate: number };
  init: number[][];
  steps: { rows: number; a: number[]; x: number[]; labels: number[]; loss: number; params: number[][] }[];
}

const fixture = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'isometric-step-reference.json'), 'utf8')) as Fixture;

/** Float32 rounding of products and sums in another order, through three Adam steps; observed ≤ 1e-6. */
const TOLERANCE = 1e-5;

/** The fixture's network as a classifier tail: Gemm → Tanh → Gemm (transB = 1, so W2 is stored transposed). */
function tailModel() {
  const { inputs, hidden, classes } = fixture.config;
  const [w1, b1, w2, b2] = fixture.init;
  const w2t = new Float32Array(hidden * classes);
  for (let i = 0; i < hidden; i++) for (let k = 0; k < classes; k++) w2t[k * hidden + i] = w2[i * classes + k];
  const g = new GraphBuilder('t/');
  const h = g.op('Tanh', [g.op('Gemm', ['T', 'w1', 'b1'])]);
  g.node('Gemm', [h, 'w2t', 'b2'], { transB: 1 }, ['logits']);
  const graph = g.graph(
    'tail',
    [tensorValueInfo('T', ['N', inputs])],
    [tensorValueInfo('logits', ['N', classes])],
    [floatTensor('w1', [inputs, hidden], w1), floatTensor('b1', [hidden], b1), floatTensor('w2t', [classes, hidden], w2t), floatTensor('b2', [classes], b2)],
  );
  return makeModel(graph, 13);
}

test(`three Adam steps of the isometric loss equal PyTorch's (loss and parameters, ${TOLERANCE})`, async (t) => {
  const c = fixture.config;
  const tail = denseTail(tailModel(), 'T');
  assert.deepEqual(
    tail.layers.map((l) => [l.inputs, l.outputs, l.activation]),
    [
      [c.inputs, c.hidden, 'tanh'],
      [c.hidden, c.classes, 'linear'],
    ],
  );
  // The transposed Gemm weight is read back in [in, out] order.
  fixture.init[2].forEach((v, i) => assert.equal(tail.layers[1].w[i], Math.fround(v)));
  const { model, params } = isometricTrainingModel(tail, [c.inputs], 13);
  const trainer = await Trainer.create({
    model,
    params,
    loss: { kind: 'softmax-ce-isometric', classes: c.classes, inputSize: c.inputSize, weight: c.weight, scale: c.scale },
    optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    session: { ep: 'cpu', threads: 1 },
  });
  try {
    let worst = 0;
    for (const [s, step] of fixture.steps.entries()) {
      const labels = BigInt64Array.from(step.labels, (v) => BigInt(v));
      const loss = await trainer.trainBatch(Float32Array.from(step.a), labels, step.rows, c.learningRate, Float32Array.from(step.x));
      const lossErr = Math.abs(loss - step.loss) / Math.max(1, Math.abs(step.loss));
      assert.ok(lossErr < TOLERANCE, `step ${s}: loss ${loss} vs PyTorch ${step.loss}`);
      worst = Math.max(worst, lossErr);
      const current = trainer.parameters();
      params.forEach((name, p) => {
        const got = current.get(name)!;
        step.params[p].forEach((v, i) => {
          const err = Math.abs(got[i] - v) / Math.max(1, Math.abs(v));
          worst = Math.max(worst, err);
          assert.ok(err < TOLERANCE, `step ${s}: ${name}[${i}] ${got[i]} vs PyTorch ${v}`);
        });
      });
    }
    t.diagnostic(`largest difference from PyTorch: ${worst.toExponential(2)}`);
  } finally {
    await trainer.release();
  }
});

test('a tail that is not dense layers stops the isometric head with the op, the node and the fix', async () => {
  const { loaded, graph } = await inspectModel(DEMO_MODEL);
  const layer = '/features/features.4/Relu_output_0';
  assert.throws(
    () => denseTail(cutModel(loaded.model, layer, graph.shapes).tail, layer),
    (e: Error) =>
      e instanceof UserError &&
      /MaxPool node '\/features\/features.5\/MaxPool' \(op 1 of 5 after '\/features\/features.4\/Relu_output_0'\)/.test(e.message) &&
      /Flatten output/.test(e.hint ?? ''),
  );
  // After the last pooling the tail is Flatten, then Gemm → Relu → Gemm: the Flatten is kept as is.
  const pool = '/features/features.5/MaxPool_output_0';
  const tail = denseTail(cutModel(loaded.model, pool, graph.shapes).tail, pool);
  assert.deepEqual(
    tail.prefix.map((n) => n.opType),
    ['Flatten'],
  );
  assert.deepEqual(
    tail.layers.map((l) => [l.inputs, l.outputs, l.activation]),
    [
      [1024, 256, 'relu'],
      [256, 10, 'linear'],
    ],
  );
});
