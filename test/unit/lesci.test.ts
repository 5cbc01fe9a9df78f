/**
 * The LESCI defense on onnxruntime: the vote semantics on a tiny hand-made reference set (expected
 * values worked out by hand), and on the demo model: vq outputs are rows of E and the nearest on
 * the reduced vectors (checked in JS), the vote agrees with a JS re-implementation, projection
 * rates, clean accuracies, determinism and save/load.
 */
import { argmaxRows } from '../../src/core/tensor';
import { demoImages } from '../helpers/demo-data';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CutRunner, referenceActivations, selectReference, type InspectedModel, type ReferenceActivations } from '../../src/core/defenses/activations';
import { knnSearch, pairDistance } from '../../src/core/defenses/knn';
import { LESCI_DEFAULTS, fitLesci, minimumVotes, type LesciOptions } from '../../src/core/defenses/lesci';
import { fitPca, pcaTransform } from '../../src/core/defenses/pca';
import { deserializeDefense, serializeDefense } from '../../src/core/defenses/serialize';
import { DEFENSE_IO, type DefenseStage } from '../../src/core/defenses/types';
import { UserError } from '../../src/core/errors';
import { inspectModel } from '../../src/core/eval/model-session';
import { encodeModel } from '../../src/core/onnx/proto';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';

const POOL1 = '/features/features.2/MaxPool_output_0';
const POOL2 = '/features/features.5/MaxPool_output_0';
const FC1 = '/classifier/classifier.2/Relu_output_0';

/** Runs a defense model alone on onnxruntime. */
async function runDefense(stage: DefenseStage, activation: Float32Array, dims: number[], logits?: Float32Array, classes = 0) {
  const s = await ort.InferenceSession.create(encodeModel(stage.model));
  try {
    const n = activation.length / dims.reduce((a, b) => a * b, 1);
    const feeds: Record<string, ort.Tensor> = { [DEFENSE_IO.activation]: new ort.Tensor('float32', activation, [n, ...dims]) };
    if (logits) feeds[DEFENSE_IO.logits] = new ort.Tensor('float32', logits, [n, classes]);
    const out = await s.run(feeds);
    return { out, outputNames: s.outputNames };
  } finally {
    await s.release();
  }
}

// ---------------------------------------------------------------- tiny hand-made reference set
// 2-D activations, 3 classes. Row 8 is misclassified by the "model" and must not enter E.
const TINY_POINTS = [
  [0, 0],
  [0.1, 0],
  [0, 0.1], // class 0
  [5, 5],
  [5.1, 5],
  [5, 5.1], // class 1
  [10, 0],
  [10.1, 0], // class 2
  [2.5, 2.5], // class 2, predicted 0
];
const TINY_LABELS = [0, 0, 0, 1, 1, 1, 2, 2, 2];
const TINY_PREDICTIONS = [0, 0, 0, 1, 1, 1, 2, 2, 0];

function tinyReference(): ReferenceActivations {
  return {
    layer: 'tiny',
    dims: [2],
    size: 2,
    n: TINY_POINTS.length,
    activations: Float32Array.from(TINY_POINTS.flat()),
    labels: Int32Array.from(TINY_LABELS),
    predictions: Int32Array.from(TINY_PREDICTIONS),
    numClasses: 3,
    opset: 13,
  };
}

const tinyVote = (options: Partial<LesciOptions>) => fitLesci(tinyReference(), { mode: 'vote', distance: 'l2', pcaDims: 0, ...options });

// Queries and their squared L2 distances to E's rows, worked out by hand:
//  q0 (0.03, 0.02): rows 0 (0.0013), 1 (0.0053), 2 (0.0073), then row 3 (4.97² + 4.98²) → labels 0, 0, 0, 1
//  q1 (5.02, 4.0):  rows 3 (1.0004), 4 (1.0064), 5 (1.2104), …                          → labels 1, 1, 1
//  q2 (9, 2):       rows 6 (5), 7 (5.21), 4 (24.21), 3 (25)                             → labels 2, 2, 1, 1
//  q3 (2.5, 2.5):   the dropped row 8 would be at 0; rows 1 and 2 tie at 12.01 exactly  → row 1 first
const QUERIES = Float32Array.from([0.03, 0.02, 5.02, 4.0, 9, 2, 2.5, 2.5]);
const LOGITS = Float32Array.from([1, 2, 3, -1, 0.5, 0.25, 7, -7, 0, 0.1, 0.2, 0.3]);

test('LESCI vote on a hand-made set: majority, strict threshold, fallback to the logits', async () => {
  const stage = await tinyVote({ k: 3, tProjection: 0.5 });
  assert.equal(stage.placement, 'after-tail');
  assert.equal(stage.scores, 'logits');
  assert.equal(stage.params.embeddingRows, 8, 'the misclassified sample is dropped');
  assert.equal(stage.params.droppedMisclassified, 1);
  assert.equal(stage.params.minimumVotes, 2);
  const { out, outputNames } = await runDefense(stage, QUERIES, [2], LOGITS, 3);
  assert.deepEqual([...outputNames].sort(), [DEFENSE_IO.projected, DEFENSE_IO.scores].sort(), 'no accepted output without reject');
  const scores = Array.from(out[DEFENSE_IO.scores].data as Float32Array);
  const projected = Array.from(out[DEFENSE_IO.projected].data as Uint8Array, Boolean);
  // q0: 3/3 of class 0; q1: 3/3 of class 1; q2: 2/3 of class 2 (> 0.5); q3: rows 1, 2 (class 0) and 0 → class 0.
  assert.deepEqual(projected, [true, true, true, true]);
  assert.deepEqual(scores, [30, 0, 0, 0, 30, 0, 0, 0, 30, 30, 0, 0]);

  // t = 0.7: q2's 2/3 no longer passes; its logits pass through unchanged.
  const strict = await tinyVote({ k: 3, tProjection: 0.7 });
  const s = await runDefense(strict, QUERIES, [2], LOGITS, 3);
  assert.deepEqual(Array.from(s.out[DEFENSE_IO.projected].data as Uint8Array, Boolean), [true, true, false, true]);
  assert.deepEqual(Array.from(s.out[DEFENSE_IO.scores].data as Float32Array).slice(6, 9), [7, -7, 0]);
  // 2/3 = 0.666… > 0.6 passes, but 3/5 = 0.6 is not > 0.6 (strict inequality, as in the paper).
  assert.equal(minimumVotes(3, 0.6), 2);
  assert.equal(minimumVotes(5, 0.6), 4);
  assert.equal(minimumVotes(10, 0.5), 6);
  assert.equal(minimumVotes(10, 0.99), 10, 'only a unanimous vote exceeds 0.99');
  assert.equal(minimumVotes(4, 0.5), 3, '2 of 4 is not a majority above one half');
  // k = 4, t = 0.5: q2's labels 2, 2, 1, 1 give o = 2, 2/4 = 0.5 does not exceed 0.5 → its logits.
  const half = await tinyVote({ k: 4, tProjection: 0.5 });
  const h = await runDefense(half, QUERIES, [2], LOGITS, 3);
  assert.deepEqual(Array.from(h.out[DEFENSE_IO.projected].data as Uint8Array, Boolean), [true, true, false, true]);
  assert.deepEqual(Array.from(h.out[DEFENSE_IO.scores].data as Float32Array), [30, 0, 0, 0, 30, 0, 7, -7, 0, 30, 0, 0]);
});

test('LESCI vote on a hand-made set: ties, reject, voteLogit, and PCA (a rotation keeps L2 neighbours)', async () => {
  // k = 4: q2's labels are 2, 2, 1, 1 — a tie. 'nearest' gives 2 (row 6 is nearest), 'smallest' gives 1.
  const nearest = await tinyVote({ k: 4, tProjection: 0.25 });
  const smallest = await tinyVote({ k: 4, tProjection: 0.25, tieBreak: 'smallest' });
  const a = await runDefense(nearest, QUERIES, [2], LOGITS, 3);
  const b = await runDefense(smallest, QUERIES, [2], LOGITS, 3);
  assert.deepEqual(Array.from(a.out[DEFENSE_IO.scores].data as Float32Array).slice(6, 9), [0, 0, 30]);
  assert.deepEqual(Array.from(b.out[DEFENSE_IO.scores].data as Float32Array).slice(6, 9), [0, 30, 0]);
  // q0 with k = 4: labels 0, 0, 0, 1 → 0 either way.
  assert.deepEqual(Array.from(b.out[DEFENSE_IO.scores].data as Float32Array).slice(0, 3), [30, 0, 0]);

  // Reject: accepted = projected; the scores still fall back to the logits where the vote fails.
  const rej = await tinyVote({ k: 3, tProjection: 0.7, reject: true, voteLogit: 12.5 });
  const r = await runDefense(rej, QUERIES, [2], LOGITS, 3);
  const accepted = Array.from(r.out[DEFENSE_IO.accepted].data as Uint8Array, Boolean);
  assert.deepEqual(accepted, [true, true, false, true]);
  assert.deepEqual(accepted, Array.from(r.out[DEFENSE_IO.projected].data as Uint8Array, Boolean));
  assert.deepEqual(Array.from(r.out[DEFENSE_IO.scores].data as Float32Array), [12.5, 0, 0, 0, 12.5, 0, 7, -7, 0, 12.5, 0, 0]);

  // PCA to the full 2 dimensions is a rotation: same L2 neighbours, same outputs.
  const withPca = await tinyVote({ k: 3, tProjection: 0.5, pcaDims: 2 });
  assert.equal(withPca.params.pcaDims, 2);
  const p = await runDefense(withPca, QUERIES, [2], LOGITS, 3);
  assert.deepEqual(Array.from(p.out[DEFENSE_IO.scores].data as Float32Array), [30, 0, 0, 0, 30, 0, 0, 0, 30, 30, 0, 0]);

  await assert.rejects(fitLesci(tinyReference(), { mode: 'vq', reject: true }), UserError);
  await assert.rejects(fitLesci(tinyReference(), { mode: 'vote', tProjection: 1 }), UserError);
});

test('LESCI vq on a hand-made set: the nearest row of E, never a dropped sample', async () => {
  const stage = await fitLesci(tinyReference(), { mode: 'vq', distance: 'l2', pcaDims: 0 });
  assert.equal(stage.placement, 'before-tail');
  const { out } = await runDefense(stage, QUERIES, [2]);
  // q3 sits on the dropped row 8; rows 1 and 2 tie and the lower index wins.
  assert.deepEqual(Array.from(out[DEFENSE_IO.activationOut].data as Float32Array), [0, 0, 5, 5, 10, 0, Math.fround(0.1), 0]);
  assert.deepEqual(out[DEFENSE_IO.activationOut].dims, [4, 2]);
});

// ---------------------------------------------------------------- the demo model
let model: InspectedModel;
let train: { x: Float32Array; labels: Int32Array; count: number };
let testSet: { x: Float32Array; labels: Int32Array; count: number };
const refs = new Map<string, ReferenceActivations>();
const runners = new Map<string, CutRunner>();
const testActs = new Map<string, Float32Array>();

before(async () => {
  model = await inspectModel(DEMO_MODEL);
  const load = demoImages;
  train = await load(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, 1000);
  testSet = await load(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 300);
  for (const layer of [POOL1, POOL2, FC1]) {
    refs.set(layer, await referenceActivations(model, layer, train.x, train.count, train.labels, { threads: 2 }));
    const runner = await CutRunner.create(model, layer, { threads: 2 });
    runners.set(layer, runner);
    testActs.set(layer, await runner.activations(testSet.x, testSet.count));
  }
});

function accuracy(scores: Float32Array, labels: Int32Array): number {
  const p = argmaxRows(scores, 10);
  return p.filter((v, i) => v === labels[i]).length / labels.length;
}

function correctSubset(ref: ReferenceActivations): ReferenceActivations {
  const keep: number[] = [];
  for (let i = 0; i < ref.n; i++) if (ref.predictions[i] === ref.labels[i]) keep.push(i);
  return selectReference(ref, keep);
}

for (const [layer, distance] of [
  [POOL1, 'cosine'],
  [FC1, 'l2'],
] as const) {
  test(`LESCI vq at ${layer} (${distance}): outputs are rows of E, the nearest on the reduced vectors`, async (t) => {
    const ref = refs.get(layer)!;
    const stage = await fitLesci(ref, { mode: 'vq', distance, pca: { threads: 2 } });
    assert.equal(stage.params.pcaDims, 64);
    const E = correctSubset(ref);
    assert.equal(stage.params.embeddingRows, E.n);
    const act = testActs.get(layer)!;
    const run = await runners.get(layer)!.runStage(stage, act, testSet.count);
    const D = ref.size;
    const rowOf = new Map<string, number>();
    for (let i = E.n - 1; i >= 0; i--) rowOf.set(Buffer.from(E.activations.buffer, i * D * 4, D * 4).toString('base64'), i);
    // The JS reference: PCA refitted (same data, same method and seed) and distances in float64.
    const pca = (await fitPca(E.activations, E.n, D, 64, { threads: 2 }))!;
    const zE = pcaTransform(pca, E.activations, E.n);
    const zQ = pcaTransform(pca, act, testSet.count);
    const js = knnSearch(zQ, testSet.count, zE, E.n, pca.dims, 1, distance);
    let same = 0;
    for (let a = 0; a < testSet.count; a++) {
      const key = Buffer.from(run.defendedActivation!.buffer, a * D * 4, D * 4).toString('base64');
      const row = rowOf.get(key);
      assert.ok(row !== undefined, `sample ${a}: the output is not a row of E`);
      if (row === js.indices[a]) same++;
      else {
        const d = pairDistance(zQ, a * pca.dims, zE, row * pca.dims, pca.dims, distance);
        assert.ok(
          d <= js.distances[a] + 1e-4 * Math.max(1, Math.abs(js.distances[a])),
          `sample ${a}: row ${row} at ${d}, nearest ${js.indices[a]} at ${js.distances[a]}`,
        );
      }
    }
    assert.ok(same >= 0.97 * testSet.count, `${same} of ${testSet.count} identical nearest rows`);
    const clean = accuracy(run.scores, testSet.labels);
    const base = accuracy(run.logits, testSet.labels);
    t.diagnostic(
      `vq ${distance} at ${layer}: clean accuracy ${clean.toFixed(3)} (undefended ${base.toFixed(3)}), E rows ${E.n}, PCA ${stage.params.pcaMethod} explains ${stage.params.pcaExplainedVariance}`,
    );
    assert.ok(clean > base - 0.15, `vq accuracy ${clean} vs ${base}`);
  });
}

for (const [layer, distance] of [
  [POOL2, 'cosine'],
  [FC1, 'cosine'],
  [FC1, 'l2'],
] as const) {
  test(`LESCI vote at ${layer} (${distance}) agrees with a JS vote; projection rate in (0, 1]`, async (t) => {
    const ref = refs.get(layer)!;
    const k = LESCI_DEFAULTS.k;
    const stage = await fitLesci(ref, { mode: 'vote', distance, reject: true });
    const act = testActs.get(layer)!;
    const run = await runners.get(layer)!.runStage(stage, act, testSet.count);
    const E = correctSubset(ref);
    const pca = (await fitPca(E.activations, E.n, ref.size, 64))!;
    const zE = pcaTransform(pca, E.activations, E.n);
    const zQ = pcaTransform(pca, act, testSet.count);
    const js = knnSearch(zQ, testSet.count, zE, E.n, pca.dims, k, distance);
    let agree = 0;
    let projectedCount = 0;
    for (let a = 0; a < testSet.count; a++) {
      // JS vote: counts, the nearest neighbour's label among the tied, o/k > 0.5.
      const labs = Array.from(js.indices.subarray(a * k, (a + 1) * k), (i) => E.labels[i]);
      const counts = new Array(10).fill(0);
      for (const l of labs) counts[l]++;
      const o = Math.max(...counts);
      const label = labs.find((l) => counts[l] === o)!;
      const passes = o / k > 0.5;
      const got = run.projected![a] === 1;
      assert.equal(run.accepted![a], run.projected![a], 'accepted = projected with reject');
      const scores = Array.from(run.scores.subarray(a * 10, (a + 1) * 10));
      if (got) {
        projectedCount++;
        assert.deepEqual(
          scores,
          scores.map((_, c) => (c === argmaxRows(Float32Array.from(scores), 10)[0] ? 30 : 0)),
          'a one-hot of 30',
        );
      } else {
        assert.deepEqual(scores, Array.from(run.logits.subarray(a * 10, (a + 1) * 10)), 'fallback: the model logits');
      }
      if (got === passes && (!got || scores[label] === 30)) agree++;
    }
    assert.ok(agree >= 0.98 * testSet.count, `${agree} of ${testSet.count} agree with the JS vote`);
    const rate = projectedCount / testSet.count;
    assert.ok(rate > 0 && rate <= 1, `projection rate ${rate}`);
    const clean = accuracy(run.scores, testSet.labels);
    const base = accuracy(run.logits, testSet.labels);
    // Accuracy among projected samples (the vote) and overall (with fallback).
    let projCorrect = 0;
    const pred = argmaxRows(run.scores, 10);
    for (let a = 0; a < testSet.count; a++) if (run.projected![a] && pred[a] === testSet.labels[a]) projCorrect++;
    t.diagnostic(
      `vote ${distance} at ${layer}: clean accuracy ${clean.toFixed(3)} (undefended ${base.toFixed(3)}), projection rate ${rate.toFixed(3)}, accuracy when projected ${(projCorrect / Math.max(projectedCount, 1)).toFixed(3)}`,
    );
    assert.ok(clean > base - 0.1);
  });
}

test('LESCI: same seed → identical models (randomized PCA); save and load round-trip', async () => {
  const ref = refs.get(POOL1)!;
  const opts: LesciOptions = { mode: 'vq', pcaDims: 32, pca: { method: 'randomized', seed: 5, threads: 2 } };
  const a = await fitLesci(ref, opts);
  const b = await fitLesci(ref, opts);
  assert.equal(a.params.pcaMethod, 'randomized');
  assert.deepEqual(encodeModel(a.model), encodeModel(b.model));
  assert.deepEqual(a.params, b.params);

  const vote = await fitLesci(refs.get(FC1)!, { mode: 'vote', reject: true });
  const saved = serializeDefense(vote);
  JSON.parse(saved.meta);
  const loaded = deserializeDefense(saved.model, saved.meta);
  assert.deepEqual(loaded.params, vote.params);
  assert.equal(loaded.placement, 'after-tail');
  const act = testActs.get(FC1)!.subarray(0, 50 * 256);
  const r1 = await runners.get(FC1)!.runStage(vote, act, 50);
  const r2 = await runners.get(FC1)!.runStage(loaded, act, 50);
  assert.deepEqual(r2.scores, r1.scores);
  assert.deepEqual(r2.accepted, r1.accepted);
  assert.throws(() => deserializeDefense(saved.model.subarray(1), saved.meta), UserError);
  assert.throws(() => deserializeDefense(saved.model, saved.meta.replace('"lesci"', '"nope"')), UserError);
});

after(async () => {
  for (const r of runners.values()) await r.release();
});
