/**
 * The fooling generator (the dAE paper's evaluation): its chain rule against finite differences on
 * tiny hand-made models (a logits classifier and a probabilities model through the reject class),
 * and fooling the real demo model with real onnxruntime and the real ONNX autodiff, whose gradients
 * are checked against an independent hand-written backward graph of the demo CNN.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { CancelledError } from '../../src/core/cancel';
import * as ort from 'onnxruntime-node';
import {
  appendRejectClassLogits,
  FoolingGenerator,
  foolingGenerator,
  scoredFromLogits,
  scoredFromRejectClassLogits,
  softmaxRows,
  type ScoredClassifier,
} from '../../src/core/attacks/fooling';
import { loadDataset, preprocess } from '../../src/core/data';
import { daeEvaluate, daeLogConfidenceGradient, daeWeightsFromStage, fitDae } from '../../src/core/defenses/dae';
import { DEFENSE_IO, type DefenseStage } from '../../src/core/defenses/types';
import { inspectModel } from '../../src/core/eval/model-session';
import { inferShapes } from '../../src/core/runtime/shapes';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { encodeModel, type ModelProto, type NodeProto } from '../../src/core/onnx/proto';
import { Rng } from '../../src/core/random';
import { OnnxClassifier } from '../../src/core/runtime/onnx-classifier';
import { createSession, type Session } from '../../src/core/runtime/session';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';
import { seededValues } from '../helpers/models';

// ---------------------------------------------------------------------------------------------
// Helpers

/** An OnnxClassifier (forward session + the project's ONNX autodiff) on `model`'s `output`. */
async function classifierOn(model: ModelProto, output: string, sampleDims: number[], numClasses: number): Promise<OnnxClassifier> {
  const bytes = encodeModel(model);
  const shapes = await inferShapes({ path: 'memory.onnx', sha256: '', model, bytes }, 1);
  const session = await createSession(bytes, { ep: 'cpu', threads: 1 });
  return new OnnxClassifier({ model, shapes, session, input: 'input', output, sampleDims, numClasses, sessionOptions: { ep: 'cpu', threads: 1 } });
}

/**
 * Tiny hand-made model, input [N,1,2,3]: flatten → gemm(6→4) → tanh → gemm(4→3) = `logits`, and
 * `probs` = sigmoid(flat·v) · softmax(logits) (a confidence-scaled output, like the dAE's).
 */
function tinyModel(): ModelProto {
  const b = new GraphBuilder('tiny_');
  const flat = b.op('Flatten', ['input'], { axis: 1 });
  const h = b.op('Tanh', [
    b.op('Gemm', [flat, b.floatConst('w1', [4, 6], seededValues(24, 3, 1.5)), b.floatConst('b1', [4], seededValues(4, 4))], { transB: 1 }),
  ]);
  b.node('Gemm', [h, b.floatConst('w2', [3, 4], seededValues(12, 5, 2)), b.floatConst('b2', [3], seededValues(3, 6))], { transB: 1 }, ['logits']);
  const conf = b.op('Sigmoid', [b.op('MatMul', [flat, b.floatConst('v', [6, 1], seededValues(6, 7, 2))])]);
  b.node('Mul', [b.op('Softmax', ['logits'], { axis: 1 }), conf], {}, ['probs']);
  const graph = b.graph('tiny', [tensorValueInfo('input', ['N', 1, 2, 3])], [tensorValueInfo('logits', ['N', 3]), tensorValueInfo('probs', ['N', 3])]);
  return makeModel(graph, 13);
}

/** L = −log score_t(G) for the generator's current parameters. */
async function generatorLoss(c: ScoredClassifier, gen: FoolingGenerator, target: number): Promise<number> {
  const s = await c.scores(gen.image(), 1);
  return -Math.log(s[target]);
}

/** Chain-rule gradient of the generator against central finite differences, on every W and b entry. */
async function checkGeneratorGradient(c: ScoredClassifier, target: number, what: string): Promise<void> {
  const gen = new FoolingGenerator(6, 5, new Rng(4), [0, 1]);
  const { grad } = await c.targetGradient(gen.image(), 1, Int32Array.of(target));
  const { ga, gradW } = gen.parameterGradient(grad);
  const h = 1e-2;
  const fd = async (arr: Float32Array, i: number): Promise<number> => {
    const v = arr[i];
    arr[i] = v + h;
    const lp = await generatorLoss(c, gen, target);
    arr[i] = v - h;
    const lm = await generatorLoss(c, gen, target);
    arr[i] = v;
    return (lp - lm) / (2 * h);
  };
  let largest = 0;
  for (let i = 0; i < 6; i++) {
    const bFd = await fd(gen.b, i);
    assert.ok(Math.abs(ga[i] - bFd) <= 1e-4 + 3e-3 * Math.abs(bFd), `${what}: ∂L/∂b${i} ${ga[i]} vs ${bFd}`);
    for (let q = 0; q < 5; q++) {
      const wFd = await fd(gen.w, i * 5 + q);
      assert.ok(Math.abs(gradW(i, q) - wFd) <= 1e-4 + 3e-3 * Math.abs(wFd), `${what}: ∂L/∂W${i},${q} ${gradW(i, q)} vs ${wFd}`);
      largest = Math.max(largest, Math.abs(wFd));
    }
  }
  assert.ok(largest > 1e-2, `${what}: the check is not vacuous`);
}

/**
 * The demo CNN (conv → relu → maxpool → conv → relu → maxpool → flatten → gemm → relu → gemm) with
 * a backward pass written by hand (independent of the project's autodiff): inputs `input`,
 * `g_logits` [N,10]; outputs `logits` and `grad` = the vector-Jacobian product of g_logits.
 */
function demoBackwardModel(model: ModelProto): ModelProto {
  const g = model.graph!;
  const b = new GraphBuilder('bw_');
  const fwd: NodeProto[] = g.node!.map((n) => (n.opType === 'MaxPool' ? { ...n, output: [n.output![0], `${n.output![0]}_idx`] } : n));
  const ofType = (op: string) => fwd.filter((n) => n.opType === op);
  const [gemm1, gemm2] = ofType('Gemm');
  const [conv1, conv2] = ofType('Conv');
  const [pool1, pool2] = ofType('MaxPool');
  const [relu1, relu2, relu3] = ofType('Relu');
  const flatten = ofType('Flatten')[0];
  const mask = (relu: NodeProto, grad: string) => b.op('Mul', [grad, b.op('Cast', [b.op('Greater', [relu.input![0], b.scalar(0, 'zero')])], { to: 1 })]);
  // Max pooling: the gradient goes to the argmax of each (disjoint) window; indices are flat over N·C·H·W.
  const unpool = (pool: NodeProto, grad: string) => {
    const flatIn = b.op('Reshape', [pool.input![0], b.int64Const('m1', [-1])]);
    const zeros = b.op('Mul', [flatIn, b.scalar(0, 'z')]);
    const idx = b.op('Reshape', [pool.output![1], b.int64Const('m1', [-1])]);
    const scattered = b.op('ScatterElements', [zeros, idx, b.op('Reshape', [grad, b.int64Const('m1', [-1])])], { axis: 0 });
    return b.op('Reshape', [scattered, b.op('Shape', [pool.input![0]])]);
  };
  let gr = mask(relu3, b.op('MatMul', ['g_logits', gemm2.input![1]]));
  gr = b.op('Reshape', [b.op('MatMul', [gr, gemm1.input![1]]), b.op('Shape', [flatten.input![0]])]);
  gr = mask(relu2, unpool(pool2, gr));
  gr = b.op('ConvTranspose', [gr, conv2.input![1]], { kernel_shape: [5, 5] });
  gr = mask(relu1, unpool(pool1, gr));
  b.node('ConvTranspose', [gr, conv1.input![1]], { kernel_shape: [5, 5] }, ['grad']);
  const graph = b.graph(
    'demo_backward',
    [tensorValueInfo('input', ['N', 1, 28, 28]), tensorValueInfo('g_logits', ['N', 10])],
    [tensorValueInfo('logits', ['N', 10]), tensorValueInfo('grad', ['N', 1, 28, 28])],
    g.initializer!,
  );
  graph.node = [...fwd, ...graph.node!];
  return makeModel(graph, 13);
}

class HandGradient {
  constructor(private readonly s: Session) {}
  /** logits and ∇ₓ Σⱼ −log softmax(logits)_{tⱼ} (two runs: forward for the cotangent, then backward). */
  async ce(x: Float32Array, n: number, targets: Int32Array): Promise<{ grad: Float32Array; probs: Float32Array }> {
    const run = (gl: Float32Array) =>
      this.s.run({ input: new ort.Tensor('float32', x, [n, 1, 28, 28]), g_logits: new ort.Tensor('float32', gl, [n, 10]) }, ['logits', 'grad']);
    const probs = softmaxRows((await run(new Float32Array(n * 10))).logits.data as Float32Array, 10);
    const gl = probs.slice();
    for (let j = 0; j < n; j++) gl[j * 10 + targets[j]] -= 1;
    return { grad: (await run(gl)).grad.data as Float32Array, probs };
  }
}

/** The demo model followed by an after-tail defense stage: one ONNX model, output DEFENSE_IO.scores. */
function spliceAfterTail(model: ModelProto, stage: DefenseStage): ModelProto {
  const g = model.graph!;
  const rename = (s: string) => (s === DEFENSE_IO.activation ? stage.layer : s === DEFENSE_IO.logits ? 'logits' : s);
  const nodes = stage.model.graph!.node!.map((n) => ({ ...n, input: n.input!.map(rename) }));
  return {
    ...model,
    graph: {
      ...g,
      node: [...g.node!, ...nodes],
      initializer: [...g.initializer!, ...stage.model.graph!.initializer!],
      output: [tensorValueInfo(DEFENSE_IO.scores, ['N', 10])],
    },
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

let demo: ModelProto;
let demoScored: ScoredClassifier;
let hand: HandGradient;
let testImages: Float32Array;

before(async () => {
  demo = (await inspectModel(DEMO_MODEL)).loaded.model;
  demoScored = scoredFromLogits(await classifierOn(demo, 'logits', [1, 28, 28], 10));
  hand = new HandGradient(await createSession(encodeModel(demoBackwardModel(demo)), { ep: 'cpu', threads: 1 }));
  const raw = await loadDataset({ path: DEMO_TEST_IMAGES, labelsPath: DEMO_TEST_LABELS, limit: 4 });
  testImages = preprocess(raw, { layout: 'NCHW', channels: 1, height: 28, width: 28 });
});

// ---------------------------------------------------------------------------------------------

test('tiny model: the generator gradient (logits classifier) matches finite differences', async () => {
  const c = scoredFromLogits(await classifierOn(tinyModel(), 'logits', [1, 2, 3], 3));
  for (const target of [0, 2]) await checkGeneratorGradient(c, target, `logits, target ${target}`);
});

test('tiny model: a probabilities output through the reject class gives −log s_t, and its generator gradient matches finite differences', async () => {
  const model = appendRejectClassLogits(tinyModel(), 'probs', 3);
  const session = await createSession(encodeModel(model), { ep: 'cpu' });
  const x = new Rng(1).uniform(new Float32Array(5 * 6));
  const out = await session.run({ input: new ort.Tensor('float32', x, [5, 1, 2, 3]) }, ['probs', 'fooling_logits']);
  const probs = out.probs.data as Float32Array;
  const z = softmaxRows(out.fooling_logits.data as Float32Array, 4);
  for (let j = 0; j < 5; j++) {
    let sum = 0;
    for (let c = 0; c < 3; c++) {
      assert.ok(Math.abs(z[j * 4 + c] - probs[j * 3 + c]) < 1e-6, 'softmax of the reject-class logits gives back the scores');
      sum += probs[j * 3 + c];
    }
    assert.ok(sum < 1 && Math.abs(z[j * 4 + 3] - (1 - sum)) < 1e-6, 'the reject class holds 1 − Σ s');
  }
  await session.release();
  const c = scoredFromRejectClassLogits(await classifierOn(model, 'fooling_logits', [1, 2, 3], 4));
  assert.equal(c.numClasses, 3);
  const s = await c.scores(x, 5);
  assert.ok(maxAbsDiff(s, probs) < 1e-6);
  for (const target of [1, 2]) await checkGeneratorGradient(c, target, `probabilities, target ${target}`);
});

test('demo: the ONNX autodiff CE gradient matches a hand-written backward graph and finite differences', async () => {
  const targets = Int32Array.from([3, 1, 4, 1]);
  const auto = await demoScored.targetGradient(testImages, 4, targets);
  const ref = await hand.ce(testImages, 4, targets);
  assert.ok(maxAbsDiff(auto.grad, ref.grad) < 1e-5, `autodiff vs hand: ${maxAbsDiff(auto.grad, ref.grad)}`);
  assert.ok(maxAbsDiff(auto.scores, ref.probs) < 1e-6);
  // Directional finite differences of Σⱼ −log p_tⱼ along random directions, at images with a little
  // noise added: the flat black background of Fashion-MNIST gives exact ties in the max-pool windows,
  // where the loss has kinks and finite differences do not estimate any one gradient. float32 and the
  // ReLU kinks a step crosses still leave a few per cent: the tolerance is 10 % (a wrong gradient,
  // e.g. a transposed kernel, is off by far more; the exact check is the hand graph above).
  const base = testImages.map((v, i) => Math.min(1, v + 0.05 * ((i * 0.6180339887) % 1)));
  const at = await hand.ce(base, 4, targets);
  const loss = async (x: Float32Array) => {
    const p = await demoScored.scores(x, 4);
    let l = 0;
    for (let j = 0; j < 4; j++) l -= Math.log(p[j * 10 + targets[j]]);
    return l;
  };
  for (const seed of [1, 2, 3]) {
    const v = new Rng(seed).normals(new Float32Array(4 * 784));
    const h = 1e-4;
    const xp = base.map((xi, i) => xi + h * v[i]);
    const xm = base.map((xi, i) => xi - h * v[i]);
    const fd = ((await loss(xp)) - (await loss(xm))) / (2 * h);
    const dot = at.grad.reduce((a, g, i) => a + g * v[i], 0);
    assert.ok(Math.abs(dot - fd) <= 0.1 * Math.abs(fd) + 1e-2, `directional derivative ${dot} vs ${fd}`);
  }
});

test('demo: the generator fools the undefended model (≥ 90 % for most targets within 150 steps)', async (t) => {
  const progress: number[] = [];
  const res = await foolingGenerator(demoScored, { seeds: [0], maxSteps: 150, thresholds: [0.9, 0.99], onProgress: (d) => progress.push(d) });
  assert.equal(progress.length, 10);
  const [at90, at99] = res.byThreshold;
  for (const r of res.byThreshold) {
    t.diagnostic(
      `threshold ${r.threshold}: fooling rate ${(100 * r.foolingRate).toFixed(0)}%, average steps ${r.averageSteps?.toFixed(1) ?? '-'} (${r.runs.map((x) => `${x.target}:${x.success ? x.steps : '×'}`).join(' ')})`,
    );
  }
  assert.equal(at90.runs.length, 10);
  assert.ok(at90.foolingRate >= 0.8, `fooling rate at 90 %: ${at90.foolingRate}`);
  for (const run of at90.runs.filter((r) => r.success)) {
    assert.ok(run.finalConfidence >= 0.9 && run.steps <= 150);
    const same = at99.runs.find((r) => r.target === run.target)!;
    if (same.success) assert.ok(same.steps >= run.steps, '99 % is reached no earlier than 90 %');
  }
  assert.ok(at90.averageSteps! > 0 && at90.averageSteps! <= 150);
  // The reported confidences are the model's: re-score the final images.
  const again = await foolingGenerator(demoScored, { targets: [2, 7], seeds: [0], maxSteps: 150, thresholds: [0.9], keepImages: true });
  const images = again.images!;
  const scores = await demoScored.scores(Float32Array.from(images.flatMap((im) => Array.from(im.x))), 2);
  images.forEach((im, j) => assert.ok(Math.abs(scores[j * 10 + im.target] - im.confidence) < 1e-5));
  images.forEach((im) => assert.ok(im.x.every((v) => v >= 0 && v <= 1)));
  // Seeded: the same runs give the same results.
  assert.deepEqual(
    again.byThreshold[0].runs,
    at90.runs.filter((r) => r.target === 2 || r.target === 7),
  );
});

test('demo: through the dAE-defended model the gradient goes through c (autodiff of the spliced model = hand CE gradient − ∇ log c)', async (t) => {
  const raw = await loadDataset({ path: DEMO_TRAIN_IMAGES, labelsPath: DEMO_TRAIN_LABELS, limit: 500 });
  const ref = preprocess(raw, { layout: 'NCHW', channels: 1, height: 28, width: 28 });
  const stage = await fitDae(
    { activations: ref, n: 500, dims: [1, 28, 28], layer: 'input' },
    { hidden: 32, epochs: 2, numClasses: 10, alpha: 300, beta: 5, log: () => {} },
  );
  const defended = appendRejectClassLogits(spliceAfterTail(demo, stage), DEFENSE_IO.scores, 10);
  const scored = scoredFromRejectClassLogits(await classifierOn(defended, 'fooling_logits', [1, 28, 28], 11));
  const targets = Int32Array.from([3, 1, 4, 1]);
  const got = await scored.targetGradient(testImages, 4, targets);
  const w = daeWeightsFromStage(stage);
  const ce = await hand.ce(testImages, 4, targets);
  const dLogC = daeLogConfidenceGradient(w, testImages, 4);
  const expected = ce.grad.map((g, i) => g - dLogC[i]);
  const c = daeEvaluate(w, testImages, 4).confidence;
  const scale = Math.max(...expected.map(Math.abs));
  assert.ok(maxAbsDiff(got.grad, expected) < 1e-5 * Math.max(1, scale), `defended gradient: ${maxAbsDiff(got.grad, expected)}`);
  assert.ok(maxAbsDiff(dLogC, new Float64Array(dLogC.length)) > 1e-3, `the dAE term is not negligible: ${maxAbsDiff(dLogC, new Float64Array(dLogC.length))}`);
  for (let j = 0; j < 4; j++) for (let k = 0; k < 10; k++) assert.ok(Math.abs(got.scores[j * 10 + k] - c[j] * ce.probs[j * 10 + k]) < 1e-5);
  // A short fooling run on the defended model works end to end.
  const res = await foolingGenerator(scored, { targets: [0, 5], seeds: [0], maxSteps: 20, thresholds: [0.9] });
  t.diagnostic(
    `dAE-defended (α=${w.alpha.toPrecision(3)}), 20 steps: ${res.byThreshold[0].runs.map((r) => `${r.target}: ${r.finalConfidence.toFixed(3)}`).join(', ')}`,
  );
  assert.equal(
    res.gradientEvaluations,
    res.byThreshold[0].runs.reduce((a, r) => a + r.steps + 1, 0),
  );
});

test('fooling runs are cancellable and validate their options', async () => {
  const controller = new AbortController();
  const cancelled = foolingGenerator(demoScored, { targets: [0], seeds: [0], maxSteps: 1000, thresholds: [0.999999], signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(cancelled, (e: Error) => e instanceof CancelledError);
  await assert.rejects(foolingGenerator(demoScored, { targets: [10] }), /outside the model's 10 classes/);
  await assert.rejects(foolingGenerator(demoScored, { thresholds: [1.5] }), /Invalid fooling threshold/);
});
