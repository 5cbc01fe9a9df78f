/**
 * The bundled TensorFlow.js demo models (demo/tfjs, made by scripts/make_tfjs_demo.ts) through the
 * tool as a user drives it: loadModel, `robustness-lab inspect model.json` with the Keras layer
 * names and insertion points, and `evaluate`, whose clean accuracy and confusion matrix on 500 demo
 * test images must equal TensorFlow.js's own on the same images.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadDataset, preprocess } from '../../src/core/data';
import { loadModel } from '../../src/core/model/load';
import { cli, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, ROOT } from '../helpers/cli';
import { artifactsFromDir, tf, tfReady } from './tfjs-helpers';

const LAYERS = path.join(ROOT, 'demo', 'tfjs', 'fashion-layers', 'model.json');
const GRAPH = path.join(ROOT, 'demo', 'tfjs', 'fashion-graph', 'model.json');
const LIMIT = 500;

async function tfjsPredictions(json: string): Promise<{ confusion: number[][]; accuracy: number }> {
  await tfReady();
  const artifacts = artifactsFromDir(json);
  const raw = await loadDataset({ path: DEMO_TEST_IMAGES, labelsPath: DEMO_TEST_LABELS, limit: LIMIT });
  const x = tf.tensor4d(preprocess(raw, { layout: 'NHWC', channels: 1, height: 28, width: 28 }), [raw.count, 28, 28, 1]);
  const probs =
    artifacts.format === 'graph-model'
      ? ((await tf.loadGraphModel(tf.io.fromMemory(artifacts))).predict(x) as tf.Tensor)
      : ((await tf.loadLayersModel(tf.io.fromMemory(artifacts))).predict(x) as tf.Tensor);
  const predictions = Array.from(probs.argMax(-1).dataSync());
  const confusion = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
  predictions.forEach((p, i) => confusion[raw.labels![i]][p]++);
  return { confusion, accuracy: predictions.filter((p, i) => p === raw.labels![i]).length / raw.count };
}

test('tfjs demo: the demo models are small and load through loadModel', () => {
  for (const json of [LAYERS, GRAPH]) {
    const dir = path.dirname(json);
    const j = JSON.parse(readFileSync(json, 'utf8'));
    const bytes = readFileSync(json).length + j.weightsManifest[0].paths.reduce((s: number, p: string) => s + readFileSync(path.join(dir, p)).length, 0);
    assert.ok(bytes < 1024 * 1024, `${json}: ${bytes} bytes`);
    const loaded = loadModel(json);
    assert.equal(loaded.model.graph!.input![0].type!.tensorType!.shape!.dim!.length, 4);
    assert.match(loaded.model.metadataProps!.find((p) => p.key === 'rlab.output')!.value!, /^logits \(pre-softmax/);
  }
  assert.equal(loadModel(LAYERS).model.graph!.output![0].name, 'probs');
});

test('tfjs demo: `inspect model.json` lists the Keras layer names with insertion points', () => {
  const r = cli(['inspect', path.relative(ROOT, LAYERS), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as {
    inputs: { name: string; shape: (number | string)[] }[];
    layers: { name: string; op: string; shape: (number | string)[]; insertionPoint: boolean }[];
  };
  assert.deepEqual(
    info.inputs.map((i) => [i.name, i.shape.slice(1)]),
    [['conv1_input', [28, 28, 1]]],
  );
  const byName = new Map(info.layers.map((l) => [l.name, l]));
  for (const name of ['conv1', 'pool1', 'conv2', 'pool2', 'flatten', 'fc1', 'probs']) {
    assert.ok(byName.get(name)?.insertionPoint, `${name} is listed as an insertion point`);
  }
  assert.equal(byName.get('conv1')!.op, 'Relu');
  assert.equal(byName.get('pool2')!.op, 'MaxPool');
  assert.deepEqual(byName.get('probs')!.shape.slice(1), [10]);
  const table = cli(['inspect', path.relative(ROOT, path.dirname(GRAPH))]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /StatefulPartitionedCall\/fashion_tfjs\/conv2\/Relu .*✓/);
});

for (const [kind, json] of [
  ['layers', LAYERS],
  ['graph', GRAPH],
] as const) {
  test(`tfjs demo: evaluate on ${LIMIT} images gives tfjs's own accuracy and predictions (${kind} model)`, async () => {
    const out = path.join(ROOT, 'test-artifacts', `tfjs-demo-${kind}.json`);
    const r = cli([
      'evaluate',
      '--model',
      path.relative(ROOT, json),
      '--data',
      DEMO_TEST_IMAGES,
      '--labels',
      DEMO_TEST_LABELS,
      '--limit',
      String(LIMIT),
      '--ep',
      'cpu',
      '--threads',
      '1',
      '--out',
      out,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    const ours = result.clean;
    const theirs = await tfjsPredictions(json);
    assert.equal(ours.accuracy, theirs.accuracy, `clean accuracy ${ours.accuracy} vs tfjs ${theirs.accuracy}`);
    assert.ok(theirs.accuracy > 0.7, `the demo model is trained (${theirs.accuracy})`);
    assert.deepEqual(ours.confusion, theirs.confusion, 'the same predictions, class by class');
  });
}
