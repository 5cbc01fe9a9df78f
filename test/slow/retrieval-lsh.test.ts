/**
 * The retrieval defense as the paper specifies it, end to end: LSH search inside the evaluated
 * model, learned attention and the paper head, attacked under the direct and adaptive threat
 * models (the adaptive surrogate reads the stage's stored keys, knn_reference_t, which the LSH
 * graph keeps); then exported as one ONNX model that onnxruntime runs alone and that predicts what
 * the evaluation's defended model predicted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadDataset, preprocess } from '../../src/core/data';
import type { LshCheck } from '../../src/core/defenses/retrieval';
import { runEvaluation } from '../../src/core/eval/evaluate';
import { exportDefended } from '../../src/core/eval/export';
import type { DefensePlan } from '../../src/protocol/experiment';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';

const FC1 = '/classifier/classifier.2/Relu_output_0';

test('retrieval --search lsh --attention learned --head paper: direct and adaptive threats run, the export runs alone and agrees', async () => {
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'rlab-retrieval-lsh-'));
  const defense: DefensePlan = {
    kind: 'retrieval',
    layer: FC1,
    reference: DEMO_TRAIN_IMAGES,
    referenceLabels: DEMO_TRAIN_LABELS,
    referenceLimit: 1500,
    threats: ['direct', 'adaptive'],
    retrieval: { head: 'paper', neighbours: 5, search: 'lsh', attention: 'learned' },
  };
  const limit = 60;
  const r = await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit,
    batchSize: 60,
    threads: 2,
    ep: 'cpu',
    seed: 0,
    cacheDir,
    attacks: { names: ['fgsm', 'bim'], eps: [0.05], norm: 'linf', steps: 5 },
    defense,
  });
  const d = r.defense!;
  assert.equal(d.params.search, 'lsh');
  assert.equal(d.params.attentionMatrix, 'learned');
  const check = d.params.lshCheck as LshCheck;
  assert.ok(check.recall > 0.95, `recall ${check.recall}`);
  for (const threat of ['direct', 'adaptive', 'adaptive/own-data']) {
    for (const attack of ['fgsm', 'bim']) {
      const a = r.attacks!.find((x) => x.target === 'defended' && x.threat === threat && x.attack === attack);
      assert.ok(a, `${attack} under ${threat} ran`);
    }
  }
  // The gradient through the attention and the head is not zero: the direct attack does something.
  const zero = (r.checks ?? []).find((c) => c.id === 'zero-gradient' && c.target === 'defended' && c.threat === 'direct');
  assert.ok(!zero?.fired, `zero-gradient check fired on the direct threat: ${zero?.message}`);
  assert.ok(d.clean.accuracy > 0.75, `defended clean accuracy ${d.clean.accuracy}`);

  // Export (the same fit, from the cache) and run it alone.
  const out = path.join(cacheDir, 'defended.onnx');
  await exportDefended({ model: DEMO_MODEL, defense, out, seed: 0, threads: 2, batchSize: 60, cacheDir });
  const raw = await loadDataset({ path: DEMO_TEST_IMAGES, labelsPath: DEMO_TEST_LABELS, limit });
  const x = preprocess(raw, { layout: 'NCHW', channels: 1, height: 28, width: 28 });
  const s = await ort.InferenceSession.create(out);
  try {
    const res = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, [limit, 1, 28, 28]) });
    const scores = res[s.outputNames[0]].data as Float32Array;
    let correct = 0;
    for (let i = 0; i < limit; i++) {
      const row = Array.from(scores.subarray(i * 10, (i + 1) * 10));
      if (row.indexOf(Math.max(...row)) === raw.labels![i]) correct++;
    }
    assert.equal(correct / limit, d.clean.accuracy, 'the exported model has the evaluated defended clean accuracy');
  } finally {
    await s.release();
  }
});
