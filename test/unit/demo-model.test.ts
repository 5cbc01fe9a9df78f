/**
 * The engine on the bundled demo: a real ONNX model exported by PyTorch and real Fashion-MNIST
 * images. References come from PyTorch (test/fixtures/demo-reference.json, written by
 * scripts/train_demo_model.py), never from this code's earlier output.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { demoImages } from '../helpers/demo-data';
import { runEvaluation } from '../../src/core/eval/evaluate';
import { inspectModel } from '../../src/core/eval/model-session';
import { cutModel } from '../../src/core/onnx/cut';
import { decodeModel, encodeModel } from '../../src/core/onnx/proto';
import { validateRunResult, type RunResult } from '../../src/protocol/run-result';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, ROOT } from '../helpers/cli';

const reference = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'demo-reference.json'), 'utf8')) as {
  modelSha256: string;
  subset: { count: number; accuracy: number; predictions: number[]; labels: number[] };
  logitsFirst8: number[][];
};

const demoTestImages = (limit?: number) => demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, limit);

async function runModel(bytes: Uint8Array, input: string, x: Float32Array, dims: number[], fetch?: string): Promise<ort.Tensor> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run({ [input]: new ort.Tensor('float32', x, dims) });
    return out[fetch ?? s.outputNames[0]];
  } finally {
    await s.release();
  }
}

test('the committed demo model is the one the PyTorch reference was computed from', () => {
  assert.equal(createHash('sha256').update(readFileSync(DEMO_MODEL)).digest('hex'), reference.modelSha256);
});

test('demo model: parse, serialise, parse gives the same graph, and onnxruntime gives identical outputs', async () => {
  const bytes = readFileSync(DEMO_MODEL);
  const parsed = decodeModel(bytes);
  const reserialised = encodeModel(parsed);
  assert.deepEqual(decodeModel(reserialised), parsed);
  const { x } = await demoTestImages(16);
  const a = await runModel(bytes, 'input', x, [16, 1, 28, 28]);
  const b = await runModel(reserialised, 'input', x, [16, 1, 28, 28]);
  assert.deepEqual(Array.from(b.data as Float32Array), Array.from(a.data as Float32Array));
  // And they match PyTorch's logits on the same images.
  const logits = a.data as Float32Array;
  reference.logitsFirst8.forEach((row, i) =>
    row.forEach((v, c) => assert.ok(Math.abs(logits[i * 10 + c] - v) < 1e-4, `logit [${i},${c}] ${logits[i * 10 + c]} vs PyTorch ${v}`)),
  );
});

test('demo model: layer listing with shapes, parameters and insertion points', async () => {
  const { graph } = await inspectModel(DEMO_MODEL);
  assert.deepEqual(
    graph.layers.map((l) => l.op),
    ['Conv', 'Relu', 'MaxPool', 'Conv', 'Relu', 'MaxPool', 'Flatten', 'Gemm', 'Relu', 'Gemm'],
  );
  assert.deepEqual(
    graph.layers.map((l) => l.shape!.slice(1)),
    [[32, 24, 24], [32, 24, 24], [32, 12, 12], [64, 8, 8], [64, 8, 8], [64, 4, 4], [1024], [256], [256], [10]],
  );
  assert.ok(
    graph.layers.every((l) => typeof l.shape![0] === 'string'),
    'the batch dimension stays symbolic',
  );
  // Conv 1→32 5x5 + bias, conv 32→64 5x5 + bias, fc 1024→256, fc 256→10: counted by hand.
  assert.deepEqual(
    graph.layers.map((l) => l.params),
    [32 * 25 + 32, 0, 0, 64 * 32 * 25 + 64, 0, 0, 0, 1024 * 256 + 256, 0, 256 * 10 + 10],
  );
  assert.equal(graph.totalParams, 317066);
  // A plain chain: every layer output is an insertion point.
  assert.ok(graph.layers.every((l) => l.insertionPoint));
  assert.deepEqual(graph.inputs, [{ name: 'input', elemType: 'float', shape: ['batch', 1, 28, 28] }]);
});

test('demo model: head followed by tail reproduces the outputs to 1e-5 at every insertion point', async () => {
  const { loaded, graph } = await inspectModel(DEMO_MODEL);
  const { x } = await demoTestImages(64);
  const dims = [64, 1, 28, 28];
  const full = (await runModel(loaded.bytes, 'input', x, dims)).data as Float32Array;
  assert.equal(graph.insertionTensors.length, 11);
  for (const t of graph.insertionTensors) {
    const { head, tail } = cutModel(loaded.model, t, graph.shapes);
    const mid = await runModel(encodeModel(head), 'input', x, dims);
    const out = (await runModel(encodeModel(tail), t, mid.data as Float32Array, mid.dims as number[])).data as Float32Array;
    let worst = 0;
    for (let i = 0; i < full.length; i++) worst = Math.max(worst, Math.abs(out[i] - full[i]));
    assert.ok(worst <= 1e-5, `cut at ${t}: max abs difference ${worst}`);
  }
});

test('clean accuracy equals the PyTorch evaluation of the same images', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-eval-'));
  const out = path.join(dir, 'run.json');
  const result = await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    batchSize: 100,
    threads: 1,
    ep: 'auto',
    seed: 0,
    out,
  });
  assert.equal(result.clean.count, reference.subset.count);
  assert.equal(result.clean.correct, Math.round(reference.subset.accuracy * reference.subset.count));
  assert.equal(result.runtime.executionProvider, 'cpu');
  const written = JSON.parse(readFileSync(out, 'utf8')) as RunResult;
  assert.deepEqual(validateRunResult(written), []);
  assert.equal(written.clean.accuracy, result.clean.accuracy);
  assert.equal(written.model.sha256, reference.modelSha256);
  // The confusion matrix agrees with PyTorch's predictions sample by sample.
  const expected = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
  reference.subset.labels.forEach((y, i) => expected[y][reference.subset.predictions[i]]++);
  assert.deepEqual(written.clean.confusion, expected);
  assert.deepEqual(readdirSync(dir), ['run.json'], 'no temporary files left behind');
});

test('a fixed batch dimension is respected: the last batch is padded and the padding dropped', async () => {
  const fixed = decodeModel(readFileSync(DEMO_MODEL));
  for (const v of [...fixed.graph!.input!, ...fixed.graph!.output!]) v.type!.tensorType!.shape!.dim![0] = { dimValue: 32 };
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-fixed-'));
  const file = path.join(dir, 'fixed.onnx');
  writeFileSync(file, encodeModel(fixed));
  // BIM goes through the fused L∞ step, whose x0 and labels are padded like the input.
  const bim = { names: ['bim' as const], eps: [0.03], norm: 'linf' as const, steps: 3 };
  const result = await runEvaluation({
    model: file,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: 100,
    batchSize: 7,
    threads: 1,
    ep: 'cpu',
    seed: 0,
    attacks: bim,
  });
  assert.equal(result.runtime.batchSize, 32);
  const expectedCorrect = reference.subset.predictions.slice(0, 100).filter((p, i) => p === reference.subset.labels[i]).length;
  assert.equal(result.clean.correct, expectedCorrect);
  // Rows are independent (the loss is summed), so padding changes nothing: same as the dynamic-batch model in batches of 32.
  const dynamic = await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: 100,
    batchSize: 32,
    threads: 1,
    ep: 'cpu',
    seed: 0,
    attacks: bim,
  });
  assert.equal(result.attacks![0].accuracy, dynamic.attacks![0].accuracy);
  assert.ok(result.attacks![0].accuracy < result.clean.accuracy, 'BIM lowers the accuracy');
});

test('CLI: inspect --json lists inputs, outputs and layers with shapes and insertion points', () => {
  const r = cli(['inspect', DEMO_MODEL, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(json), ['inputs', 'outputs', 'layers']);
  assert.equal(json.layers.length, 10);
  assert.deepEqual(Object.keys(json.layers[0]), ['name', 'op', 'outputs', 'shape', 'params', 'insertionPoint']);
  assert.deepEqual(json.layers[3].shape, ['batch', 64, 8, 8]);
  assert.equal(json.layers[3].params, 51264);
});

test('CLI: evaluate prints the table and writes the result; errors are clear and write nothing', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-cli-'));
  const out = path.join(dir, 'nested', 'result.json');
  const r = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--limit',
    '200',
    '--batch',
    '50',
    '--threads',
    '1',
    '--ep',
    'cpu',
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /clean accuracy/);
  const expected = reference.subset.predictions.slice(0, 200).filter((p, i) => p === reference.subset.labels[i]).length / 200;
  assert.match(r.stdout, new RegExp(`${(100 * expected).toFixed(2)}%`));
  const written = JSON.parse(readFileSync(out, 'utf8')) as RunResult;
  assert.equal(written.clean.count, 200);
  assert.equal(written.runtime.executionProvider, 'cpu');

  const cuda = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--ep',
    'cuda',
    '--out',
    path.join(dir, 'cuda.json'),
  ]);
  if (cuda.code !== 0) {
    assert.equal(cuda.code, 2);
    assert.match(cuda.stderr, /CUDA execution provider is not (installed|available)/);
    assert.match(cuda.stderr, /--ep cpu/);
    assert.ok(!existsSync(path.join(dir, 'cuda.json')));
  }

  const noLabels = cli(['evaluate', '--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--out', path.join(dir, 'x.json')]);
  assert.equal(noLabels.code, 2);
  assert.match(noLabels.stderr, /has no labels/);
  assert.match(noLabels.stderr, /--labels/);

  const wrongLabels = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    path.join(ROOT, 'demo', 'data', 'train-labels-idx1-ubyte.gz'),
    '--out',
    path.join(dir, 'y.json'),
  ]);
  assert.equal(wrongLabels.code, 2);
  assert.match(wrongLabels.stderr, /1000/);
  assert.match(wrongLabels.stderr, /4000/);

  const badFlag = cli(['evaluate', '--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--batch', 'ten']);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /--batch must be a whole number/);
  assert.deepEqual(readdirSync(dir).sort(), ['nested']);
});
