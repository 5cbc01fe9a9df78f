/**
 * Parameter gradients of the ONNX autodiff: for every rule that takes weights (Conv, ConvTranspose,
 * Gemm, MatMul, BatchNormalization, InstanceNormalization, LayerNormalization, PRelu, the
 * broadcasting arithmetic, …), d<dy, y>/dθ from buildGradientModel(…, { wrt }) against central
 * finite differences of the FORWARD model in onnxruntime with θ fed as an input (float64
 * accumulation, no backward code involved). Also: the input gradient is unchanged by `wrt`, the
 * training losses' parameter gradients (buildObjectiveGradientModel) against finite differences of
 * the loss, a gradient with respect to an intermediate tensor, and the refusals.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildGradientModel, buildObjectiveGradientModel } from '../../src/core/onnx/autodiff/build';
import { trainingObjective, type TrainingLoss } from '../../src/core/onnx/autodiff/train-loss';
import { UserError } from '../../src/core/errors';
import type { Dim } from '../../src/core/runtime/shapes';
import { floatAttr, GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { DataType, type ModelProto, type NodeProto } from '../../src/core/onnx/proto';
import { tensorFloat32 } from '../../src/core/onnx/tensor-proto';
import { awayFrom, centralDifferences, dotWith, f32, scaledMaxError, session, shapesOf } from '../helpers/gradcheck';
import { seededValues } from '../helpers/models';

const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

interface Params {
  /** A trainable float initializer with seeded values in [-scale, scale] (or the given values). */
  (dims: number[], seed: number, scale?: number): string;
  values(dims: number[], values: number[]): string;
}

interface ParamCase {
  name: string;
  opset: number;
  dims: Dim[];
  build: (b: GraphBuilder, x: string, p: Params) => string;
  x?: (n: number) => Float32Array;
  /** Also differentiate with respect to the input (default true). */
  input?: boolean;
  h?: number;
  tol?: number;
  /** Ops the backward must contain. */
  expectOps?: string[];
  /**
   * Piecewise model (ReLU, max pools) whose weights move every kink at once: coordinates whose
   * finite difference changes between steps h and h/4 cross a kink and are skipped (at most a tenth).
   */
  kinks?: boolean;
}

const smooth = (n: number) => seededValues(n, 11, 1);
const noKinkAt =
  (...kinks: number[]) =>
  (n: number) =>
    awayFrom(n, 13, 1, kinks, 0.05);

function buildCase(c: ParamCase): { model: ModelProto; y: string; params: string[] } {
  const b = new GraphBuilder();
  const params: string[] = [];
  const p = ((dims: number[], seed: number, scale = 0.5) => {
    const name = b.floatConst('theta', dims, seededValues(size(dims), seed, scale));
    params.push(name);
    return name;
  }) as Params;
  p.values = (dims, values) => {
    const name = b.floatConst('theta', dims, values);
    params.push(name);
    return name;
  };
  const y = c.build(b, 'x', p);
  return { model: makeModel(b.graph(c.name, [tensorValueInfo('x', c.dims)], [{ name: y }]), c.opset), y, params };
}

/** The forward model with initializer `name` turned into a graph input (so finite differences can perturb it). */
function withInput(model: ModelProto, name: string): { model: ModelProto; values: Float32Array; dims: number[] } {
  const graph = model.graph!;
  const init = graph.initializer!.find((t) => t.name === name)!;
  const dims = (init.dims ?? []).map(Number);
  return {
    model: {
      ...model,
      graph: { ...graph, initializer: graph.initializer!.filter((t) => t.name !== name), input: [...graph.input!, tensorValueInfo(name, dims)] },
    },
    values: tensorFloat32(init),
    dims,
  };
}

const isBackward = (n: NodeProto) => (n.output ?? []).some((o) => o.startsWith('grad/'));

async function checkCase(c: ParamCase): Promise<void> {
  const { model, y, params } = buildCase(c);
  const shapes = await shapesOf(model);
  const withInputGrad = c.input !== false;
  const gm = buildGradientModel(model, shapes, { kind: 'vjp' }, { wrt: params });
  assert.deepEqual(Object.keys(gm.grads!), params);
  const ops = new Set(gm.model.graph!.node!.filter(isBackward).map((n) => n.opType!));
  for (const op of c.expectOps ?? []) assert.ok(ops.has(op), `${c.name}: backward should use ${op} (has ${[...ops].join(', ')})`);

  const dims = c.dims.map((d) => (typeof d === 'number' ? d : 2));
  const x = (c.x ?? smooth)(size(dims));
  const fwd = await session(model);
  const ref = (await fwd.run({ x: f32(x, dims) }))[y];
  await fwd.release();
  const dy = seededValues(ref.data.length, 29, 1);
  const feeds = { x: f32(x, dims), [gm.cotangent!]: f32(dy, ref.dims as number[]) };
  const both = await session(gm.model);
  const out = await both.run(feeds);
  await both.release();
  assert.ok(scaledMaxError(out[y].data as Float32Array, ref.data as Float32Array) < 1e-5, `${c.name}: forward output changed`);

  if (withInputGrad) {
    // The input gradient is the one buildGradientModel gives without `wrt`.
    const plain = buildGradientModel(model, shapes, { kind: 'vjp' });
    const s = await session(plain.model);
    const expected = (await s.run({ x: f32(x, dims), [plain.cotangent!]: f32(dy, ref.dims as number[]) }))[plain.grad].data as Float32Array;
    await s.release();
    assert.ok(scaledMaxError(out[gm.grad].data as Float32Array, expected) < 1e-6, `${c.name}: input gradient changed by wrt`);
  }

  for (const name of params) {
    const grad = out[gm.grads![name]];
    const fdModel = withInput(model, name);
    assert.deepEqual(grad.dims, fdModel.dims, `${c.name}: gradient of '${name}' has the parameter's shape`);
    const s = await session(fdModel.model);
    const h = c.h ?? 1e-2;
    const differences = (step: number) =>
      centralDifferences(s, name, fdModel.values, fdModel.dims, step, dotWith(dy), { stack: false, output: y, extraFeeds: () => ({ x: f32(x, dims) }) });
    let fd = await differences(h);
    let g = grad.data as Float32Array;
    if (c.kinks) {
      const fine = await differences(h / 4);
      const scale = Math.max(...Array.from(fine, Math.abs));
      const smooth = Array.from(fd.keys()).filter((i) => Math.abs(fd[i] - fine[i]) < 2e-3 * scale);
      assert.ok(smooth.length >= 0.9 * fd.length, `${c.name}: ${fd.length - smooth.length} of ${fd.length} coordinates cross a kink`);
      fd = Float64Array.from(smooth, (i) => fine[i]);
      g = Float32Array.from(smooth, (i) => g[i]);
    }
    await s.release();
    const err = scaledMaxError(g, fd);
    assert.ok(err < (c.tol ?? 2e-3), `${c.name}: gradient of '${name}' ${fdModel.dims.join('×')}: error ${err.toExponential(2)} vs finite differences`);
  }
}

const cases: ParamCase[] = [
  // ------------------------------------------------------------ convolutions
  {
    name: 'Conv 3x3 pads 1 + bias',
    opset: 13,
    dims: ['N', 3, 6, 6],
    build: (b, x, p) => b.op('Conv', [x, p([4, 3, 3, 3], 1), p([4], 2)], { pads: [1, 1, 1, 1] }),
    expectOps: ['Conv', 'ConvTranspose'],
  },
  {
    name: 'Conv strided, asymmetric pads, odd sizes (floor leftovers cropped)',
    opset: 13,
    dims: ['N', 2, 8, 9],
    build: (b, x, p) => b.op('Conv', [x, p([3, 2, 3, 3], 3)], { strides: [2, 2], pads: [1, 0, 0, 1] }),
  },
  {
    name: 'Conv dilated',
    opset: 13,
    dims: ['N', 2, 9, 9],
    build: (b, x, p) => b.op('Conv', [x, p([3, 2, 3, 3], 4)], { dilations: [2, 2], pads: [2, 2, 2, 2] }),
  },
  {
    name: 'Conv dilated and strided',
    opset: 13,
    dims: ['N', 2, 10, 9],
    build: (b, x, p) => b.op('Conv', [x, p([2, 2, 3, 2], 41)], { dilations: [2, 3], strides: [2, 1], pads: [1, 0, 2, 1] }),
  },
  {
    name: 'Conv grouped (2 groups) + bias',
    opset: 13,
    dims: ['N', 4, 6, 6],
    build: (b, x, p) => b.op('Conv', [x, p([6, 2, 3, 3], 5), p([6], 6)], { group: 2, pads: [1, 1, 1, 1] }),
  },
  {
    name: 'Conv depthwise strided',
    opset: 13,
    dims: ['N', 4, 7, 7],
    build: (b, x, p) => b.op('Conv', [x, p([4, 1, 3, 3], 7)], { group: 4, strides: [2, 2], pads: [1, 1, 1, 1] }),
  },
  {
    name: 'Conv auto_pad SAME_UPPER stride 2',
    opset: 13,
    dims: ['N', 2, 7, 8],
    build: (b, x, p) => b.op('Conv', [x, p([2, 2, 3, 3], 8)], { auto_pad: 'SAME_UPPER', strides: [2, 2] }),
  },
  {
    name: 'Conv VALID stride 3 (uncovered rows)',
    opset: 13,
    dims: ['N', 2, 8, 8],
    build: (b, x, p) => b.op('Conv', [x, p([2, 2, 2, 2], 9), p([2], 10)], { auto_pad: 'VALID', strides: [3, 3] }),
  },
  {
    name: 'Conv 1-D + bias',
    opset: 13,
    dims: ['N', 2, 10],
    build: (b, x, p) => b.op('Conv', [x, p([3, 2, 3], 11), p([3], 12)], { strides: [2], pads: [1, 0] }),
  },
  {
    name: 'Conv at opset 7, fixed batch',
    opset: 7,
    dims: [3, 2, 6, 6],
    build: (b, x, p) => b.op('Conv', [x, p([2, 2, 3, 3], 13), p([2], 14)], { strides: [2, 2], pads: [1, 1, 1, 1] }),
  },
  {
    // Positive inputs, weights and biases keep the ReLU away from its kink; the pool's maxima may still swap.
    name: 'Conv → Relu → MaxPool 2x2 (the fused-pool rewrite keeps differentiated weights)',
    opset: 13,
    dims: ['N', 2, 6, 6],
    x: (n) => seededValues(n, 19, 1).map((v) => 1 + v / 2),
    build: (b, x, p) =>
      b.op(
        'MaxPool',
        [
          b.op('Relu', [
            b.op(
              'Conv',
              [
                x,
                p.values(
                  [3, 2, 3, 3],
                  Array.from(seededValues(54, 15, 0.25), (v) => v + 0.25),
                ),
                p.values([3], [0.1, 0.2, 0.3]),
              ],
              { pads: [1, 1, 1, 1] },
            ),
          ]),
        ],
        { kernel_shape: [2, 2], strides: [2, 2] },
      ),
    h: 2e-3,
    kinks: true,
  },
  {
    name: 'ConvTranspose stride 2, pads, output_padding + bias',
    opset: 13,
    dims: ['N', 3, 4, 4],
    build: (b, x, p) => b.op('ConvTranspose', [x, p([3, 2, 3, 3], 17), p([2], 18)], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }),
  },
  {
    name: 'ConvTranspose grouped dilated',
    opset: 13,
    dims: ['N', 4, 3, 3],
    build: (b, x, p) => b.op('ConvTranspose', [x, p([4, 1, 2, 2], 19)], { group: 2, strides: [2, 2], dilations: [2, 2] }),
  },
  {
    name: 'ConvTranspose auto_pad SAME_UPPER',
    opset: 13,
    dims: ['N', 2, 3, 3],
    build: (b, x, p) => b.op('ConvTranspose', [x, p([2, 2, 3, 3], 20)], { strides: [2, 2], auto_pad: 'SAME_UPPER' }),
  },
  {
    name: 'ConvTranspose output_shape',
    opset: 13,
    dims: ['N', 2, 3, 3],
    build: (b, x, p) => b.op('ConvTranspose', [x, p([2, 2, 3, 3], 21)], { strides: [2, 2], output_shape: [7, 7] }),
  },
  // ------------------------------------------------------------ dense
  {
    name: 'Gemm transB, alpha, beta, bias [M]',
    opset: 13,
    dims: ['N', 5],
    build: (b, x, p) => b.op('Gemm', [x, p([3, 5], 22), p([3], 23)], { transB: 1, alpha: floatAttr('alpha', 0.7), beta: floatAttr('beta', 1.3) }),
  },
  {
    name: 'Gemm weight as A with transA, bias [N, 1]',
    opset: 13,
    dims: [5, 3],
    build: (b, x, p) => b.op('Gemm', [p([4, 5], 24), x, p([4, 1], 25)], { transA: 0 }),
  },
  {
    name: 'Gemm at opset 9 (C required), transA on the input',
    opset: 9,
    dims: [5, 3],
    build: (b, x, p) => b.op('Gemm', [x, p([5, 4], 26), p([1], 27)], { transA: 1 }),
  },
  { name: 'MatMul + Add bias', opset: 13, dims: ['N', 6], build: (b, x, p) => b.op('Add', [b.op('MatMul', [x, p([6, 4], 28)]), p([4], 29)]) },
  { name: 'MatMul [N,3,4]·[4,5] (weight summed over the batch dims)', opset: 13, dims: ['N', 3, 4], build: (b, x, p) => b.op('MatMul', [x, p([4, 5], 30)]) },
  { name: 'MatMul weight on the left, broadcast batch', opset: 13, dims: ['N', 1, 4, 3], build: (b, x, p) => b.op('MatMul', [p([2, 5, 4], 31), x]) },
  { name: 'MatMul with a 1-D weight', opset: 13, dims: ['N', 3, 4], build: (b, x, p) => b.op('MatMul', [x, p([4], 32)]) },
  {
    name: 'dense autoencoder: Sigmoid(x·W1 + b1)·W2 + b2 (every parameter and the input)',
    opset: 13,
    dims: ['N', 6],
    build: (b, x, p) =>
      b.op('Add', [b.op('MatMul', [b.op('Sigmoid', [b.op('Add', [b.op('MatMul', [x, p([6, 4], 33)]), p([4], 34)])]), p([4, 6], 35)]), p([6], 36)]),
  },
  // ------------------------------------------------------------ normalisation
  {
    name: 'BatchNormalization: scale, bias, mean and variance',
    opset: 13,
    dims: ['N', 3, 3, 3],
    build: (b, x, p) =>
      b.op('BatchNormalization', [x, p([3], 40), p([3], 41), p([3], 42), p.values([3], [0.5, 1.2, 2])], { epsilon: floatAttr('epsilon', 1e-3) }),
  },
  {
    name: 'BatchNormalization after a Conv, scale and bias only (constant statistics)',
    opset: 13,
    dims: ['N', 2, 4, 4],
    build: (b, x, p) =>
      b.op('BatchNormalization', [
        b.op('Conv', [x, p([3, 2, 3, 3], 43)], { pads: [1, 1, 1, 1] }),
        p([3], 44),
        p([3], 45),
        b.floatConst('mean', [3], [0.1, -0.2, 0.3]),
        b.floatConst('var', [3], [0.5, 1, 2]),
      ]),
  },
  {
    name: 'BatchNormalization at opset 7 (spatial)',
    opset: 7,
    dims: ['N', 3, 4],
    build: (b, x, p) => b.op('BatchNormalization', [x, p([3], 46), p([3], 47), p([3], 48), p.values([3], [0.3, 1, 4])]),
  },
  {
    name: 'InstanceNormalization scale and bias',
    opset: 13,
    dims: ['N', 3, 3, 4],
    build: (b, x, p) => b.op('InstanceNormalization', [x, p([3], 49), p([3], 50)], { epsilon: floatAttr('epsilon', 1e-4) }),
  },
  {
    name: 'LayerNormalization last axis, scale and bias (opset 17)',
    opset: 17,
    dims: ['N', 3, 5],
    build: (b, x, p) => b.op('LayerNormalization', [x, p([5], 51), p([5], 52)]),
  },
  {
    name: 'LayerNormalization from axis 1, scale only (opset 17)',
    opset: 17,
    dims: ['N', 2, 3, 2],
    build: (b, x, p) => b.op('LayerNormalization', [x, p([2, 3, 2], 53)], { axis: 1, epsilon: floatAttr('epsilon', 1e-3) }),
  },
  // ------------------------------------------------------------ activations and arithmetic
  { name: 'PRelu slope per channel [C,1,1]', opset: 13, dims: ['N', 3, 2, 4], x: noKinkAt(0), build: (b, x, p) => b.op('PRelu', [x, p([3, 1, 1], 54)]) },
  {
    name: 'PRelu slope on the input directly (no input gradient)',
    opset: 13,
    dims: ['N', 4],
    input: false,
    x: noKinkAt(0),
    build: (b, x, p) => b.op('PRelu', [x, p([4], 55)]),
  },
  {
    name: 'Add / Sub / Mul / Div with broadcast parameters',
    opset: 13,
    dims: ['N', 3, 2, 3],
    build: (b, x, p) => {
      const scaled = b.op('Mul', [b.op('Sub', [b.op('Add', [x, p([3, 1, 1], 56)]), p([1], 57)]), p([2, 3], 58)]);
      return b.op('Div', [scaled, b.op('Add', [b.op('Mul', [p([3, 1, 1], 59), p([3, 1, 1], 60)]), b.scalar(1)])]);
    },
  },
  {
    name: 'Sub / Div with the parameter as the first operand at opset 7',
    opset: 7,
    dims: ['N', 3, 2],
    build: (b, x, p) => b.op('Div', [p([2], 61), b.op('Add', [b.op('Sub', [p([3, 1], 62), b.op('Mul', [x, x])]), b.scalar(2)])]),
  },
  {
    name: 'Where picks a parameter or the input',
    opset: 13,
    dims: ['N', 4],
    x: noKinkAt(0),
    build: (b, x, p) => b.op('Where', [b.op('Greater', [x, b.scalar(0)]), b.op('Tanh', [x]), p([4], 63)]),
  },
  {
    name: 'Concat of the input and a parameter, Sum, Max',
    opset: 13,
    dims: [2, 3],
    x: noKinkAt(-0.3, 0, 0.3),
    build: (b, x, p) => b.op('Max', [b.op('Sum', [b.op('Concat', [x, p([1, 3], 64)], { axis: 0 }), p([3], 65)]), b.scalar(-2)]),
  },
  {
    name: 'Sigmoid, Tanh, Exp on parameter-scaled inputs',
    opset: 13,
    dims: ['N', 5],
    build: (b, x, p) => b.op('Mul', [b.op('Tanh', [b.op('Mul', [x, p([5], 66)])]), b.op('Exp', [b.op('Sigmoid', [p([5], 67)])])]),
  },
];

for (const c of cases) test(`parameter gradient: ${c.name}`, () => checkCase(c));

test('training losses: parameter gradients of mse and softmax-ce (buildObjectiveGradientModel) against finite differences of the loss', async () => {
  for (const loss of [{ kind: 'mse' }, { kind: 'softmax-ce' }] as TrainingLoss[]) {
    const b = new GraphBuilder();
    const w1 = b.floatConst('w1', [5, 4], seededValues(20, 1, 0.6)),
      b1 = b.floatConst('b1', [4], seededValues(4, 2, 0.3));
    const w2 = b.floatConst('w2', [4, 5], seededValues(20, 3, 0.6)),
      b2 = b.floatConst('b2', [5], seededValues(5, 4, 0.3));
    const hidden = b.op('Tanh', [b.op('Add', [b.op('MatMul', ['x', w1]), b1])]);
    b.node('Add', [b.op('MatMul', [hidden, w2]), b2], {}, ['y']);
    const model = makeModel(b.graph('mlp', [tensorValueInfo('x', ['N', 5])], [tensorValueInfo('y', ['N', 5])]), 13);
    const shapes = await shapesOf(model);
    const params = [w1, b1, w2, b2];
    const og = buildObjectiveGradientModel(model, shapes, trainingObjective(loss), { wrt: params });
    assert.equal(og.objectiveInputs.length, 1);
    assert.ok(!og.model.graph!.output!.some((o) => o.name === 'x_grad'), 'no input gradient');
    const n = 3;
    const x = seededValues(n * 5, 5, 1);
    const target =
      loss.kind === 'mse' ? new ort.Tensor('float32', seededValues(n * 5, 6, 1), [n, 5]) : new ort.Tensor('int64', BigInt64Array.from([0n, 3n, 4n]), [n]);
    const feeds = { x: f32(x, [n, 5]), [og.objectiveInputs[0]]: target };
    const s = await session(og.model);
    const out = await s.run(feeds);
    await s.release();
    // The loss value against a plain-JS computation from the model's own output.
    const y = out[og.output].data as Float32Array;
    let expected = 0;
    if (loss.kind === 'mse') {
      const t = target.data as Float32Array;
      for (let i = 0; i < y.length; i++) expected += (y[i] - t[i]) ** 2 / y.length;
    } else {
      const labels = [0, 3, 4];
      for (let r = 0; r < n; r++) {
        const row = Array.from(y.subarray(r * 5, r * 5 + 5));
        const m = Math.max(...row);
        expected += (Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) + m - row[labels[r]]) / n;
      }
    }
    assert.ok(Math.abs((out[og.loss].data as Float32Array)[0] - expected) < 1e-5 * Math.max(1, expected), `${loss.kind}: loss value`);
    for (const name of params) {
      const fdModel = withInput(og.model, name);
      const fs = await session(fdModel.model);
      const fd = await centralDifferences(fs, name, fdModel.values, fdModel.dims, 1e-2, (o, copy) => o[copy], {
        stack: false,
        output: og.loss,
        extraFeeds: () => feeds,
      });
      await fs.release();
      const err = scaledMaxError(out[og.grads[name]].data as Float32Array, fd);
      assert.ok(err < 2e-3, `${loss.kind}: gradient of '${name}': error ${err.toExponential(2)}`);
    }
  }
});

test('a gradient with respect to an intermediate tensor equals the input gradient of the model cut there', async () => {
  const b = new GraphBuilder();
  const h = b.op('Tanh', [b.op('MatMul', ['x', b.floatConst('w1', [4, 3], seededValues(12, 1, 0.7))])]);
  b.node('MatMul', [b.op('Sigmoid', [h]), b.floatConst('w2', [3, 2], seededValues(6, 2, 0.7))], {}, ['y']);
  const model = makeModel(b.graph('two', [tensorValueInfo('x', ['N', 4])], [tensorValueInfo('y', ['N', 2])]), 13);
  const gm = buildGradientModel(model, await shapesOf(model), { kind: 'vjp' }, { wrt: [h] });
  const x = seededValues(8, 3, 1),
    dy = seededValues(4, 4, 1);
  const s = await session(gm.model);
  const out = await s.run({ x: f32(x, [2, 4]), [gm.cotangent!]: f32(dy, [2, 2]) });
  await s.release();
  // The tail alone, h as its input.
  const t = new GraphBuilder();
  t.node('MatMul', [t.op('Sigmoid', ['h']), t.floatConst('w2', [3, 2], seededValues(6, 2, 0.7))], {}, ['y']);
  const tail = makeModel(t.graph('tail', [tensorValueInfo('h', ['N', 3])], [tensorValueInfo('y', ['N', 2])]), 13);
  const tg = buildGradientModel(tail, await shapesOf(tail), { kind: 'vjp' });
  const ts = await session(tg.model);
  const tout = await ts.run({ h: f32(await hiddenOf(model, h, x), [2, 3]), [tg.cotangent!]: f32(dy, [2, 2]) });
  await ts.release();
  assert.ok(scaledMaxError(out[gm.grads![h]].data as Float32Array, tout[tg.grad].data as Float32Array) < 1e-6);
});

async function hiddenOf(model: ModelProto, h: string, x: Float32Array): Promise<Float32Array> {
  const s = await session({ ...model, graph: { ...model.graph!, output: [tensorValueInfo(h, ['N', 3])] } });
  const out = await s.run({ x: f32(x, [2, 4]) });
  await s.release();
  return out[h].data as Float32Array;
}

test('a parameter the output does not depend on gets a zero gradient; unsupported and unknown parameters are refused', async () => {
  const b = new GraphBuilder();
  const w = b.floatConst('w', [3], [0.1, 0.2, 0.3]);
  const unused = b.floatConst('unused', [3], [1, 2, 3]);
  const behindArgMax = b.op('Cast', [b.op('ArgMax', [b.op('Add', ['x', unused])], { axis: 1, keepdims: 1 })], { to: DataType.FLOAT });
  b.node('Add', [b.op('Mul', ['x', w]), behindArgMax], {}, ['y']);
  const model = makeModel(b.graph('z', [tensorValueInfo('x', ['N', 3])], [tensorValueInfo('y', ['N', 3])]), 13);
  const shapes = await shapesOf(model);
  const gm = buildGradientModel(model, shapes, { kind: 'vjp' }, { wrt: [w, unused] });
  const s = await session(gm.model);
  const out = await s.run({ x: f32(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]), [gm.cotangent!]: f32(new Float32Array(6).fill(1), [2, 3]) });
  await s.release();
  assert.deepEqual(Array.from(out[gm.grads![w]].data as Float32Array), [5, 7, 9]);
  assert.deepEqual(Array.from(out[gm.grads![unused]].data as Float32Array), [0, 0, 0]);

  // A Clip bound as a parameter has no rule: one error naming the op.
  const c = new GraphBuilder();
  const lo = c.floatConst('lo', [], [-0.5]);
  c.node('Clip', ['x', lo, c.scalar(0.5)], {}, ['y']);
  const clip = makeModel(c.graph('clip', [tensorValueInfo('x', ['N', 3])], [tensorValueInfo('y', ['N', 3])]), 13);
  const clipShapes = await shapesOf(clip);
  assert.throws(
    () => buildGradientModel(clip, clipShapes, { kind: 'vjp' }, { wrt: [lo] }),
    (e: unknown) => e instanceof UserError && /Clip/.test(e.message) && /'lo_\d+'/.test(e.message),
  );
  assert.throws(() => buildGradientModel(clip, clipShapes, { kind: 'vjp' }, { wrt: ['nope'] }), /no initializer, input or node output named 'nope'/);
  assert.throws(() => buildObjectiveGradientModel(clip, clipShapes, trainingObjective({ kind: 'mse' }), { wrt: [] }), UserError);
  // Only an unrelated tensor: the output does not depend on it.
  const d = new GraphBuilder();
  const free = d.floatConst('free', [3], [1, 1, 1]);
  d.node('Relu', ['x'], {}, ['y']);
  const lone = makeModel({ ...d.graph('lone', [tensorValueInfo('x', ['N', 3])], [tensorValueInfo('y', ['N', 3])]) }, 13);
  const loneShapes = await shapesOf(lone);
  assert.throws(
    () => buildObjectiveGradientModel(lone, loneShapes, trainingObjective({ kind: 'mse' }), { wrt: [free] }),
    /does not depend differentiably on 'free_\d+'/,
  );
});
