/**
 * The dAE confidence defense: its ONNX graph against a plain-JS computation of the paper's formulas,
 * the closed-form Jacobian diagonal against finite differences, seeded training, thresholds, and
 * the defense on the demo model and data (real onnxruntime, training included).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { deserializeDefense, serializeDefense } from '../../src/core/defenses/serialize';
import * as ort from 'onnxruntime-node';
import { loadDataset, preprocess } from '../../src/core/data';
import {
  buildDaeModel,
  DAE_CONFIDENCE_OUTPUT,
  daeAcceptance,
  daeEvaluate,
  daeJacobianDiagonal,
  daeLogConfidenceGradient,
  daeReconstruct,
  daeWeightsFromStage,
  fitDae,
  runDaeStage,
  thresholdTable,
  type DaeParams,
  type DaeWeights,
} from '../../src/core/defenses/dae';
import { DEFENSE_IO, type DefenseStage } from '../../src/core/defenses/types';
import { inspectModel } from '../../src/core/eval/model-session';
import { cutModel } from '../../src/core/onnx/cut';
import { encodeModel } from '../../src/core/onnx/proto';
import { Rng } from '../../src/core/random';
import { createSession, runBatched } from '../../src/core/runtime/session';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';

const HIDDEN_T = '/classifier/classifier.2/Relu_output_0';
const quiet = () => {};

// ---------------------------------------------------------------------------------------------
// Helpers: demo data and activations at T computed with onnxruntime on the head of the cut model

interface Split {
  x: Float32Array;
  labels: Int32Array;
  n: number;
}

async function demoSplit(which: 'train' | 'test', limit?: number): Promise<Split> {
  const raw = await loadDataset(
    which === 'train' ? { path: DEMO_TRAIN_IMAGES, labelsPath: DEMO_TRAIN_LABELS, limit } : { path: DEMO_TEST_IMAGES, labelsPath: DEMO_TEST_LABELS, limit },
  );
  return { x: preprocess(raw, { layout: 'NCHW', channels: 1, height: 28, width: 28 }), labels: raw.labels!, n: raw.count };
}

async function activationsAt(tensor: string, x: Float32Array, n: number): Promise<{ activations: Float32Array; logits: Float32Array; dims: number[] }> {
  const { loaded, graph } = await inspectModel(DEMO_MODEL);
  const { head } = cutModel(loaded.model, tensor, graph.shapes);
  const headSession = await createSession(encodeModel(head), { ep: 'cpu' });
  const full = await createSession(loaded.bytes, { ep: 'cpu' });
  const input = { name: 'input', data: x, count: n, sampleDims: [1, 28, 28] };
  const act = await runBatched(headSession, input, head.graph!.output![0].name!, 250);
  const logits = await runBatched(full, input, 'logits', 250);
  await headSession.release();
  await full.release();
  return { activations: act.data, logits: logits.data, dims: (graph.shapes.get(tensor) ?? []).slice(1) as number[] };
}

function softmax(logits: Float32Array, k: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let j = 0; j < logits.length / k; j++) {
    const row = logits.subarray(j * k, (j + 1) * k);
    const mx = Math.max(...row);
    const e = Array.from(row, (v) => Math.exp(v - mx));
    const s = e.reduce((a, b) => a + b, 0);
    e.forEach((v, c) => (out[j * k + c] = v / s));
  }
  return out;
}

/**
 * Random dAE weights; the decoder is partly tied to the encoder (W2 = noise + W1ᵀ) so that
 * Σᵢ ∂rᵢ/∂hᵢ is large enough for both branches of Γ to occur.
 */
function randomWeights(d: number, h: number, seed: number, activation: 'sigmoid' | 'tanh' = 'sigmoid', scale = 1): DaeWeights {
  const rng = new Rng(seed);
  const encoder = rng.normals(new Float32Array(d * h), 0, scale);
  const decoder = rng.normals(new Float32Array(h * d), 0, scale);
  for (let i = 0; i < d; i++) for (let k = 0; k < h; k++) decoder[k * d + i] += encoder[i * h + k];
  return { d, h, activation, encoder, b1: rng.normals(new Float32Array(h), 0, 0.5), decoder, b2: rng.normals(new Float32Array(d), 0, 0.5), alpha: 2, beta: 3 };
}

async function runModel(w: DaeWeights, dims: number[], x: Float32Array, logits: Float32Array, n: number) {
  const session = await createSession(encodeModel(buildDaeModel(w, dims)), { ep: 'cpu' });
  const k = logits.length / n;
  const out = await session.run(
    { [DEFENSE_IO.activation]: new ort.Tensor('float32', x, [n, ...dims]), [DEFENSE_IO.logits]: new ort.Tensor('float32', logits, [n, k]) },
    [DEFENSE_IO.scores, DAE_CONFIDENCE_OUTPUT],
  );
  await session.release();
  return { scores: out[DEFENSE_IO.scores].data as Float32Array, confidence: out[DAE_CONFIDENCE_OUTPUT].data as Float32Array };
}

function assertRelClose(actual: number, expected: number, rtol: number, atol: number, what: string) {
  assert.ok(Math.abs(actual - expected) <= atol + rtol * Math.abs(expected), `${what}: ${actual} vs ${expected}`);
}

// Shared fitted stages (trained once, used by several tests).
let train: Split;
let testSet: Split;
let inputStage: DefenseStage;
let inputTest: { activations: Float32Array; logits: Float32Array; dims: number[] };
let hiddenStage: DefenseStage;
let hiddenTest: { activations: Float32Array; logits: Float32Array; dims: number[] };

before(async () => {
  train = await demoSplit('train', 2000);
  testSet = await demoSplit('test');
  const refIn = await activationsAt('input', train.x, train.n);
  inputTest = await activationsAt('input', testSet.x, testSet.n);
  inputStage = await fitDae(
    { activations: refIn.activations, n: train.n, dims: refIn.dims, layer: 'input' },
    { hidden: 64, epochs: 4, seed: 1, numClasses: 10, log: quiet },
  );
  const refHidden = await activationsAt(HIDDEN_T, train.x, train.n);
  hiddenTest = await activationsAt(HIDDEN_T, testSet.x, testSet.n);
  hiddenStage = await fitDae(
    { activations: refHidden.activations, n: train.n, dims: refHidden.dims, layer: HIDDEN_T },
    { hidden: 128, epochs: 6, seed: 1, numClasses: 10, log: quiet },
  );
});

// ---------------------------------------------------------------------------------------------

test('the dAE trains on onnxruntime (the recorded backend says so) without loading TensorFlow.js', () => {
  assert.equal((inputStage.params as unknown as DaeParams).backend, 'onnxruntime:cpu');
  assert.equal((hiddenStage.params as unknown as DaeParams).backend, 'onnxruntime:cpu');
  assert.ok(!Object.keys(require.cache).some((k) => k.includes('@tensorflow')), 'no TensorFlow.js module was loaded');
});

test('the ONNX confidence graph equals the plain-JS formulas (both branches of Γ, sigmoid and tanh)', async () => {
  for (const activation of ['sigmoid', 'tanh'] as const) {
    const dims = [2, 2, 2];
    const w = randomWeights(8, 12, 7, activation, activation === 'sigmoid' ? 0.8 : 0.5);
    const n = 64;
    const x = new Rng(3).normals(new Float32Array(n * 8), 0, 1.5);
    const logits = new Rng(4).normals(new Float32Array(n * 5), 0, 2);
    const { scores, confidence } = await runModel(w, dims, x, logits, n);
    const ref = daeEvaluate(w, x, n);
    const positive = ref.gamma.filter((g) => g > 0).length;
    assert.ok(positive > 0 && positive < n, `${activation}: both branches of Γ occur (${positive}/${n} with γ > 0)`);
    const p = softmax(logits, 5);
    for (let j = 0; j < n; j++) {
      assertRelClose(confidence[j], ref.confidence[j], 1e-4, 1e-7, `${activation} c[${j}]`);
      for (let c = 0; c < 5; c++) assertRelClose(scores[j * 5 + c], ref.confidence[j] * p[j * 5 + c], 1e-4, 1e-7, `${activation} score[${j},${c}]`);
    }
  }
});

test('Γ from the closed-form Jacobian diagonal equals finite differences of r', () => {
  for (const activation of ['sigmoid', 'tanh'] as const) {
    const w = randomWeights(10, 16, 11, activation, 0.7);
    const x = new Rng(5).normals(new Float64Array(10));
    const diag = daeJacobianDiagonal(w, x);
    const h = 1e-5;
    let traceFd = 0;
    for (let i = 0; i < 10; i++) {
      const xp = x.slice();
      const xm = x.slice();
      xp[i] += h;
      xm[i] -= h;
      const fd = (daeReconstruct(w, xp)[i] - daeReconstruct(w, xm)[i]) / (2 * h);
      assertRelClose(diag[i], fd, 1e-5, 1e-7, `${activation} ∂r${i}/∂h${i}`);
      traceFd += fd - 1;
    }
    const gamma = daeEvaluate(w, x, 1).gamma[0];
    assertRelClose(gamma, traceFd / 10, 1e-5, 1e-8, `${activation} γ`);
  }
  // On the fitted demo dAE (D = 784), a few coordinates of one test image.
  const w = daeWeightsFromStage(inputStage);
  const x = Float64Array.from(inputTest.activations.subarray(0, 784));
  const diag = daeJacobianDiagonal(w, x);
  for (const i of [0, 200, 406, 600, 783]) {
    const h = 1e-4;
    const xp = x.slice();
    const xm = x.slice();
    xp[i] += h;
    xm[i] -= h;
    assertRelClose(diag[i], (daeReconstruct(w, xp)[i] - daeReconstruct(w, xm)[i]) / (2 * h), 1e-4, 1e-7, `demo ∂r${i}/∂h${i}`);
  }
});

test('∇ log c in closed form equals finite differences of log c', () => {
  const w = randomWeights(8, 12, 7, 'sigmoid', 0.8);
  const n = 8;
  const x = new Rng(3).normals(new Float64Array(n * 8), 0, 1.5);
  const grad = daeLogConfidenceGradient(w, x, n);
  const ev = daeEvaluate(w, x, n);
  assert.ok(ev.gamma.some((g) => g > 0) && ev.gamma.some((g) => g <= 0), 'both branches of Γ');
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < 8; i++) {
      const h = 1e-6;
      const xp = x.slice();
      const xm = x.slice();
      xp[j * 8 + i] += h;
      xm[j * 8 + i] -= h;
      const fd = (Math.log(daeEvaluate(w, xp, n).confidence[j]) - Math.log(daeEvaluate(w, xm, n).confidence[j])) / (2 * h);
      assertRelClose(grad[j * 8 + i], fd, 1e-4, 1e-6, `∂log c/∂h[${j},${i}]`);
    }
  }
});

test('the dAE trains: loss decreases, clean reconstruction beats the mean, seeded runs give identical weights', async () => {
  for (const stage of [inputStage, hiddenStage]) {
    const p = stage.params as unknown as DaeParams;
    assert.equal(p.lossHistory.length, p.epochs);
    assert.ok(p.lossHistory[p.lossHistory.length - 1] < 0.8 * p.lossHistory[0], `denoising loss ${p.lossHistory.join(' → ')}`);
    // In units of s², predicting the per-feature mean scores exactly 1.
    assert.ok(p.cleanMse.final < p.cleanMse.initial && p.cleanMse.final < 0.6, `clean MSE ${p.cleanMse.initial} → ${p.cleanMse.final}`);
  }
  const ref = { activations: hiddenTest.activations.subarray(0, 300 * 256), n: 300, dims: [256], layer: HIDDEN_T };
  const opts = { hidden: 16, epochs: 2, batchSize: 32, log: quiet };
  const a = await fitDae(ref, { ...opts, seed: 5 });
  const b = await fitDae(ref, { ...opts, seed: 5 });
  const c = await fitDae(ref, { ...opts, seed: 6 });
  const bytes = (s: DefenseStage) => Buffer.from(encodeModel(s.model));
  assert.ok(bytes(a).equals(bytes(b)), 'same seed, same weights');
  assert.ok(!bytes(a).equals(bytes(c)), 'another seed, other weights');
  assert.deepEqual(a.params, b.params);
});

test('the defense stage follows the contract and saves to one ONNX file', async () => {
  const stage = inputStage;
  assert.equal(stage.kind, 'dae');
  assert.equal(stage.layer, 'input');
  assert.equal(stage.placement, 'after-tail');
  assert.equal(stage.scores, 'probabilities');
  const g = stage.model.graph!;
  assert.deepEqual(
    g.input!.map((v) => v.name),
    [DEFENSE_IO.activation, DEFENSE_IO.logits],
  );
  assert.deepEqual(
    g.output!.map((v) => v.name),
    [DEFENSE_IO.scores, DAE_CONFIDENCE_OUTPUT],
  );
  const allowed = new Set(['Flatten', 'MatMul', 'Add', 'Sub', 'Mul', 'Sigmoid', 'Tanh', 'Sqrt', 'Exp', 'Relu', 'Softmax', 'Reshape']);
  for (const node of g.node!) assert.ok(allowed.has(node.opType!) && !node.domain, `plain ONNX op ${node.opType}`);
  const saved = serializeDefense(stage); // the one on-disk format of every fitted defense
  const back = deserializeDefense(saved.model, saved.meta);
  assert.deepEqual(back.params, stage.params);
  assert.equal(back.layer, stage.layer);
  const n = 50;
  const x = inputTest.activations.subarray(0, n * 784);
  const lg = inputTest.logits.subarray(0, n * 10);
  const r1 = await runDaeStage(stage, x, lg, n);
  const r2 = await runDaeStage(back, x, lg, n);
  assert.deepEqual(r2.scores, r1.scores);
  // Weights read back from the saved model reproduce its confidences.
  const ev = daeEvaluate(daeWeightsFromStage(back), x, n);
  for (let j = 0; j < n; j++) assertRelClose(r2.confidence[j], ev.confidence[j], 1e-4, 1e-7, `c[${j}]`);
});

test('thresholds: acceptance and the metric table against a hand computation; nothing rejected at 0', () => {
  // 4 samples, 3 classes: top scores 0.95 (correct), 0.5 (wrong), 0.991 (correct), 0.2 (correct).
  const scores = Float32Array.from([0.95, 0.03, 0.02, 0.1, 0.5, 0.3, 0.001, 0.991, 0.008, 0.2, 0.1, 0.05]);
  const labels = Int32Array.from([0, 0, 1, 0]);
  assert.deepEqual(Array.from(daeAcceptance(scores, 0, 3)), [1, 1, 1, 1]);
  assert.deepEqual(Array.from(daeAcceptance(scores, 0.9, 3)), [1, 0, 1, 0]);
  const table = thresholdTable(scores, labels, [0, 0.9, 0.99, 0.999]);
  assert.deepEqual(
    table.map((r) => r.rejectionRate),
    [0, 0.5, 0.75, 1],
  );
  assert.deepEqual(
    table.map((r) => r.acceptedAccuracy),
    [0.75, 1, 1, null],
  );
  assert.deepEqual(
    table.map((r) => r.accuracyOverAll),
    [0.75, 0.5, 0.25, 0],
  );
});

test('demo: rejection and accepted accuracy at 0 / 90 % / 99 %, at the input and at the last hidden layer', async (t) => {
  const thresholds = [0, 0.9, 0.99];
  const plain = thresholdTable(softmax(inputTest.logits, 10), testSet.labels, thresholds);
  const fmt = (rows: ReturnType<typeof thresholdTable>) =>
    rows
      .map(
        (r) =>
          `${r.threshold}: rejected ${(100 * r.rejectionRate).toFixed(1)}%, accepted acc ${r.acceptedAccuracy === null ? '-' : (100 * r.acceptedAccuracy).toFixed(1) + '%'}`,
      )
      .join('; ');
  t.diagnostic(`undefended: ${fmt(plain)}`);
  for (const [name, stage, data] of [
    ['input', inputStage, inputTest],
    ['hidden', hiddenStage, hiddenTest],
  ] as const) {
    const { scores, confidence } = await runDaeStage(stage, data.activations, data.logits, testSet.n);
    const rows = thresholdTable(scores, testSet.labels, thresholds);
    t.diagnostic(`dAE at ${name} (α=${(stage.params as unknown as DaeParams).alpha.toPrecision(3)}): ${fmt(rows)}`);
    assert.equal(rows[0].rejectionRate, 0, 'nothing rejected at threshold 0');
    // c > 0 does not change the argmax: accuracy at 0 is the undefended accuracy.
    assert.equal(rows[0].accuracyOverAll, plain[0].accuracyOverAll);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i].rejectionRate >= rows[i - 1].rejectionRate, 'rejection grows with the threshold');
    // c ≤ 1: the dAE rejects at least what the undefended softmax rejects, and strictly more at 90 %.
    for (let i = 0; i < rows.length; i++) assert.ok(rows[i].rejectionRate >= plain[i].rejectionRate);
    assert.ok(rows[1].rejectionRate > plain[1].rejectionRate);
    assert.ok(confidence.every((c) => c > 0 && c <= 1));
    // Uniform-noise images get a lower confidence than every-day test images.
    const noiseX = new Rng(9).uniform(new Float32Array(100 * 784));
    const noise =
      name === 'input' ? { activations: noiseX, logits: (await activationsAt('input', noiseX, 100)).logits } : await activationsAt(HIDDEN_T, noiseX, 100);
    const cn = (await runDaeStage(stage, noise.activations, noise.logits, 100)).confidence;
    const median = (v: Float32Array) => Float32Array.from(v).sort()[v.length >> 1];
    t.diagnostic(`dAE at ${name}: median c on test images ${median(confidence).toFixed(4)}, on uniform noise ${median(cn).toFixed(4)}`);
    assert.ok(median(cn) < median(confidence));
  }
});
