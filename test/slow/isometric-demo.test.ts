/**
 * The isometric head on the demo CNN: fitted through fitDefense at the Flatten output (the tail is
 * Gemm → Relu → Gemm), it evaluates with a sensible clean accuracy; the same seed gives the same
 * model byte for byte, another seed another model; the fit is cached and round-trips through
 * serializeDefense; the composed (exported) model equals the stage run by sessions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CutRunner } from '../../src/core/defenses/activations';
import { composeDefended } from '../../src/core/defenses/compose';
import { fitDefense } from '../../src/core/defenses/fit';
import { deserializeDefense, serializeDefense } from '../../src/core/defenses/serialize';
import { inspectModel } from '../../src/core/eval/model-session';
import { encodeModel } from '../../src/core/onnx/proto';
import type { DefensePlan } from '../../src/protocol/experiment';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';

const LAYER = '/classifier/classifier.0/Flatten_output_0';

function accuracy(scores: Float32Array, labels: Int32Array, classes: number): number {
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = scores.subarray(i * classes, (i + 1) * classes);
    if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
  }
  return correct / labels.length;
}

test('the isometric head fits on the demo model, evaluates sensibly, is seeded, cached and round-trips', async (t) => {
  const { loaded, graph } = await inspectModel(DEMO_MODEL);
  const ref = await demoImages(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, 2000);
  const testSet = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 500);
  const plan: DefensePlan = { kind: 'isometric', layer: LAYER, reference: DEMO_TRAIN_IMAGES, isometric: { epochs: 6 } };
  const ctx = (cacheDir: string) => ({
    loaded,
    graph,
    reference: { x: ref.x, labels: ref.labels, count: ref.count, sha256: 'demo-2000' },
    seed: 0,
    cacheDir,
    threads: 2,
    batchSize: 100,
    log: () => {},
  });
  const first = await fitDefense(plan, ctx(mkdtempSync(path.join(tmpdir(), 'rlab-iso-a-'))));
  assert.equal(first.stage.placement, 'after-tail');
  assert.match(String(first.stage.params.stage), /ignores the tail.s logits/);
  assert.match(String(first.stage.params.representation), /256 units, relu/);

  // Same seed, fresh cache: the same model, byte for byte. Another seed: other weights.
  const again = await fitDefense(plan, ctx(mkdtempSync(path.join(tmpdir(), 'rlab-iso-b-'))));
  assert.equal(again.cached, false);
  assert.deepEqual(encodeModel(again.stage.model), encodeModel(first.stage.model));
  const other = await fitDefense({ ...plan, seed: 1 }, ctx(mkdtempSync(path.join(tmpdir(), 'rlab-iso-c-'))));
  assert.notDeepEqual(encodeModel(other.stage.model), encodeModel(first.stage.model));

  // Cached, and the cached stage is the fitted one.
  const dir = path.dirname(first.cacheFile);
  const cached = await fitDefense(plan, ctx(dir));
  assert.equal(cached.cached, true);
  assert.deepEqual(encodeModel(cached.stage.model), encodeModel(first.stage.model));
  const saved = serializeDefense(first.stage);
  const restored = deserializeDefense(saved.model, saved.meta);
  assert.deepEqual(restored.params, first.stage.params);

  // Clean accuracy: by sessions (head, then the stage), and through the single composed model.
  const runner = await CutRunner.create({ loaded, graph }, LAYER, { threads: 2 });
  try {
    const act = await runner.activations(testSet.x, testSet.count);
    const run = await runner.runStage(restored, act, testSet.count);
    const defended = accuracy(run.scores, testSet.labels, run.classes);
    const undefended = accuracy(run.logits, testSet.labels, run.classes);
    t.diagnostic(
      `clean accuracy on 500 test images: ${(100 * undefended).toFixed(1)}% undefended, ${(100 * defended).toFixed(1)}% with the isometric head; loss per epoch ${(first.stage.params.lossHistory as number[]).map((v) => v.toFixed(3)).join(', ')}`,
    );
    // The metric term trades clean accuracy (observed 74% after 6 epochs on 2000 images, 87% after 10
    // on 4000); far above chance (10%), and below the undefended 92%.
    assert.ok(defended > 0.7 && defended < undefended, `defended clean accuracy ${defended}`);
    const composed = composeDefended(loaded.model, restored);
    const session = await ort.InferenceSession.create(encodeModel(composed.model));
    const out = await session.run({ input: new ort.Tensor('float32', testSet.x.slice(0, 100 * 784), [100, 1, 28, 28]) });
    const scores = out[composed.scores].data as Float32Array;
    scores.forEach((v, i) => assert.ok(Math.abs(v - run.scores[i]) < 1e-4, `composed score ${i}: ${v} vs ${run.scores[i]}`));
    await session.release();
  } finally {
    await runner.release();
  }
});
