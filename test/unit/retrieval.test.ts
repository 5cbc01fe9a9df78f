/**
 * The retrieval defense on onnxruntime with the demo model: the graph's exact search and attention
 * against the JS implementation (α sums to 1, h̄ = Σ α h_n), clean accuracy of the 'tail' and
 * 'paper' heads, LSH recall and JS-LSH vs ONNX-exact predictions, determinism and save/load.
 */
import { argmaxRows } from '../../src/core/tensor';
import { demoImages } from '../helpers/demo-data';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CutRunner, referenceActivations, type InspectedModel, type ReferenceActivations } from '../../src/core/defenses/activations';
import { knnSearch, pairDistance } from '../../src/core/defenses/knn';
import {
  RETRIEVAL_TENSORS,
  buildRetrievalIndex,
  fitRetrieval,
  leaveOneOutFeatures,
  retrievalAttend,
  retrievalForward,
  retrievalSearch,
} from '../../src/core/defenses/retrieval';
import { deserializeDefense, serializeDefense } from '../../src/core/defenses/serialize';
import { DEFENSE_IO, type DefenseStage } from '../../src/core/defenses/types';
import { inspectModel } from '../../src/core/eval/model-session';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { DataType, encodeModel } from '../../src/core/onnx/proto';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';

const POOL2 = '/features/features.5/MaxPool_output_0';
const FC1 = '/classifier/classifier.2/Relu_output_0';

let model: InspectedModel;
let testSet: { x: Float32Array; labels: Int32Array; count: number };
const refs = new Map<string, ReferenceActivations>();
/** The whole demo reference set (4000 images) at pool2, for the LSH test. */
let large: ReferenceActivations;
const runners = new Map<string, CutRunner>();
const testActs = new Map<string, Float32Array>();

before(async () => {
  model = await inspectModel(DEMO_MODEL);
  const load = demoImages;
  const train = await load(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, 4000);
  testSet = await load(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 400);
  large = await referenceActivations(model, POOL2, train.x, train.count, train.labels, { threads: 2 });
  for (const layer of [POOL2, FC1]) {
    refs.set(layer, await referenceActivations(model, layer, train.x.subarray(0, 1500 * 784), 1500, train.labels, { threads: 2 }));
    const runner = await CutRunner.create(model, layer, { threads: 2 });
    runners.set(layer, runner);
    testActs.set(layer, await runner.activations(testSet.x, testSet.count));
  }
});

after(async () => {
  for (const r of runners.values()) await r.release();
});

function accuracy(scores: Float32Array, labels: Int32Array): number {
  const p = argmaxRows(scores, 10);
  return p.filter((v, i) => v === labels[i]).length / labels.length;
}

/** Runs the defense graph with its internal tensors exposed as outputs. */
async function runInternals(stage: DefenseStage, act: Float32Array, count: number, dims: number[], N: number, D: number) {
  const m = structuredClone(stage.model);
  m.graph!.output = [
    ...m.graph!.output!,
    tensorValueInfo(RETRIEVAL_TENSORS.indices, ['B', N], DataType.INT64),
    tensorValueInfo(RETRIEVAL_TENSORS.alpha, ['B', N]),
    tensorValueInfo(RETRIEVAL_TENSORS.hbar, ['B', D]),
    tensorValueInfo(RETRIEVAL_TENSORS.ybar, ['B', 10]),
  ];
  const s = await ort.InferenceSession.create(encodeModel(m));
  try {
    const out = await s.run({ [DEFENSE_IO.activation]: new ort.Tensor('float32', act, [count, ...dims]) });
    return {
      indices: Int32Array.from(out[RETRIEVAL_TENSORS.indices].data as BigInt64Array, Number),
      alpha: out[RETRIEVAL_TENSORS.alpha].data as Float32Array,
      hbar: out[RETRIEVAL_TENSORS.hbar].data as Float32Array,
      ybar: out[RETRIEVAL_TENSORS.ybar].data as Float32Array,
      activationOut: out[DEFENSE_IO.activationOut].data as Float32Array,
    };
  } finally {
    await s.release();
  }
}

for (const [layer, distance] of [
  [FC1, 'l2'],
  [POOL2, 'cosine'],
] as const) {
  test(`retrieval graph at ${layer} (${distance}): exact search, α sums to 1, h̄ and ȳ equal the JS computation`, async () => {
    const ref = refs.get(layer)!;
    const N = 10;
    const D = ref.size;
    const count = 100;
    const stage = await fitRetrieval(ref, { head: 'tail', neighbours: N, distance });
    assert.equal(stage.placement, 'before-tail');
    const act = testActs.get(layer)!.subarray(0, count * D);
    const got = await runInternals(stage, act, count, ref.dims, N, D);
    const index = buildRetrievalIndex(ref, { neighbours: N, distance });
    // The search runs on h' = W h: the same neighbours as JS exact search on h' (float32 near-ties aside).
    const exact = retrievalSearch(index, act, count, { method: 'exact' });
    const keys = index.keys;
    const qk = new Float32Array(count * index.keyDims);
    for (let a = 0; a < count; a++)
      for (let c = 0; c < index.keyDims; c++) {
        let s = 0;
        for (let j = 0; j < D; j++) s += act[a * D + j] * index.projection![c * D + j];
        qk[a * index.keyDims + c] = s;
      }
    const jsKnn = knnSearch(qk, count, keys, ref.n, index.keyDims, N, distance);
    assert.deepEqual(exact.indices, jsKnn.indices);
    let same = 0;
    for (let a = 0; a < count * N; a++) {
      if (got.indices[a] === exact.indices[a]) same++;
      else {
        const q = Math.floor(a / N);
        const d = pairDistance(qk, q * index.keyDims, keys, got.indices[a] * index.keyDims, index.keyDims, distance);
        assert.ok(Math.abs(d - jsKnn.distances[a]) <= 1e-4 * Math.max(1, jsKnn.distances[a]), `near-tie only: ${d} vs ${jsKnn.distances[a]}`);
      }
    }
    assert.ok(same >= 0.97 * count * N, `${same} of ${count * N} identical neighbours`);
    // Attention over the graph's own neighbours: α sums to 1 and equals the JS softmax; h̄ = Σ α h_n.
    const js = retrievalAttend(index, act, count, got.indices);
    for (let a = 0; a < count; a++) {
      let sum = 0;
      for (let m = 0; m < N; m++) {
        sum += got.alpha[a * N + m];
        assert.ok(Math.abs(got.alpha[a * N + m] - js.alpha[a * N + m]) < 1e-4, `α[${a}, ${m}] ${got.alpha[a * N + m]} vs ${js.alpha[a * N + m]}`);
      }
      assert.ok(Math.abs(sum - 1) < 1e-5, `Σα = ${sum}`);
      let ysum = 0;
      for (let c = 0; c < 10; c++) {
        assert.ok(Math.abs(got.ybar[a * 10 + c] - js.ybar[a * 10 + c]) < 1e-4);
        ysum += got.ybar[a * 10 + c];
      }
      assert.ok(Math.abs(ysum - 1) < 1e-5);
      for (let j = 0; j < D; j++) {
        // Directly from the database rows, with the graph's α.
        let direct = 0;
        for (let m = 0; m < N; m++) direct += got.alpha[a * N + m] * ref.activations[got.indices[a * N + m] * D + j];
        const scale = 1e-4 * (1 + Math.abs(direct));
        assert.ok(
          Math.abs(got.hbar[a * D + j] - direct) < scale && Math.abs(got.hbar[a * D + j] - js.hbar[a * D + j]) < 1e-3 * (1 + Math.abs(direct)),
          `h̄[${a}, ${j}]`,
        );
      }
    }
    assert.deepEqual(got.activationOut, got.hbar, 'the tail head outputs h̄ (reshaped)');
  });
}

test('retrieval tail head: clean accuracy close to the undefended model (N = 5, 10)', async (t) => {
  for (const layer of [FC1, POOL2]) {
    const ref = refs.get(layer)!;
    for (const N of [5, 10]) {
      const stage = await fitRetrieval(ref, { head: 'tail', neighbours: N });
      const run = await runners.get(layer)!.runStage(stage, testActs.get(layer)!, testSet.count);
      const clean = accuracy(run.scores, testSet.labels);
      const base = accuracy(run.logits, testSet.labels);
      t.diagnostic(`tail N=${N} at ${layer}: clean accuracy ${clean.toFixed(3)} (undefended ${base.toFixed(3)})`);
      assert.ok(clean >= base - (layer === FC1 ? 0.05 : 0.1), `${clean} vs ${base}`);
    }
  }
});

test('retrieval LSH: recall against exact search, and the JS LSH path predicts like the ONNX exact path', async (t) => {
  const layer = POOL2;
  const ref = large;
  const act = testActs.get(layer)!;
  const N = 10;
  const recall = (lshOpts: { tables?: number; bits?: number; radius?: number }) => {
    const index = buildRetrievalIndex(ref, { neighbours: N, lsh: lshOpts });
    const exact = retrievalSearch(index, act, testSet.count, { method: 'exact' });
    const lsh = retrievalSearch(index, act, testSet.count, { method: 'lsh' });
    let hit = 0;
    for (let a = 0; a < testSet.count; a++) {
      const s = new Set(exact.indices.subarray(a * N, (a + 1) * N));
      for (const i of lsh.indices.subarray(a * N, (a + 1) * N)) if (s.has(i)) hit++;
    }
    return { recall: hit / (testSet.count * N), candidates: lsh.meanCandidates / ref.n, index };
  };
  const def = recall({});
  const generous = recall({ tables: 16, radius: 2 });
  t.diagnostic(
    `LSH recall@10 at ${layer} (database ${ref.n}): defaults (8 tables, ${def.index.lsh.bits} bits, Hamming radius 1) ${def.recall.toFixed(3)} looking at ${(100 * def.candidates).toFixed(1)}% of the rows; 16 tables, radius 2: ${generous.recall.toFixed(3)} at ${(100 * generous.candidates).toFixed(1)}%`,
  );
  assert.ok(def.recall > 0.8, `default recall ${def.recall}`);
  assert.ok(def.candidates < 0.25, `default candidates ${def.candidates}`);
  assert.ok(generous.recall > 0.97, `generous recall ${generous.recall}`);

  // JS LSH search → JS attention → tail (a session) vs the ONNX exact defense composed by sessions.
  const stage = await fitRetrieval(ref, { head: 'tail', neighbours: N });
  const runner = runners.get(layer)!;
  const onnx = argmaxRows((await runner.runStage(stage, act, testSet.count)).scores, 10);
  const { hbar } = retrievalForward(generous.index, act, testSet.count, { method: 'lsh' });
  const js = argmaxRows(await runner.tailLogits(hbar, testSet.count), 10);
  const agree = js.filter((p, i) => p === onnx[i]).length / testSet.count;
  t.diagnostic(`JS LSH path (16 tables, radius 2) vs ONNX exact path: same prediction on ${(100 * agree).toFixed(1)}%`);
  assert.ok(agree >= 0.95, `agreement ${agree}`);
  // Leave-one-out never retrieves the sample itself.
  const loo = retrievalSearch(def.index, ref.activations.subarray(0, 200 * ref.size), 200, { method: 'lsh', exclude: (q) => q });
  for (let q = 0; q < 200; q++) assert.ok(!loo.indices.subarray(q * N, (q + 1) * N).includes(q));
});

test('retrieval paper head: trains on onnxruntime (leave-one-out) to a reasonable accuracy; same seed → same model', async (t) => {
  const layer = FC1;
  const ref = refs.get(layer)!;
  const index = buildRetrievalIndex(ref, { neighbours: 5 });
  const features = leaveOneOutFeatures(index, 'exact');
  // Leave-one-out features: ȳ is a distribution and no sample retrieves itself.
  const F = ref.size + 10;
  for (let i = 0; i < 20; i++) {
    let s = 0;
    for (let c = 0; c < 10; c++) s += features[i * F + ref.size + c];
    assert.ok(Math.abs(s - 1) < 1e-5);
  }
  for (const N of [5, 10]) {
    const losses: number[] = [];
    const training = { epochs: 8, hidden: [64] };
    const stage = await fitRetrieval(ref, { head: 'paper', neighbours: N, training, seed: 3, onEpoch: (_e, loss) => losses.push(loss) });
    assert.equal(stage.placement, 'after-tail');
    assert.equal(stage.scores, 'logits');
    assert.equal(losses.length, 8);
    assert.ok(losses[7] < losses[0], `loss ${losses[0]} → ${losses[7]}`);
    const run = await runners.get(layer)!.runStage(stage, testActs.get(layer)!, testSet.count);
    const clean = accuracy(run.scores, testSet.labels);
    const base = accuracy(run.logits, testSet.labels);
    const tr = stage.params.training as { trainAccuracy: number; finalLoss: number };
    t.diagnostic(
      `paper head N=${N} at ${layer}: clean accuracy ${clean.toFixed(3)} (undefended ${base.toFixed(3)}), train accuracy ${tr.trainAccuracy.toFixed(3)}, loss ${tr.finalLoss.toFixed(3)}`,
    );
    assert.ok(clean > 0.8, `paper head accuracy ${clean}`);
    if (N === 5) {
      const again = await fitRetrieval(ref, { head: 'paper', neighbours: N, training, seed: 3 });
      assert.deepEqual(encodeModel(again.model), encodeModel(stage.model), 'same seed, same trained model');
      // Save/load: the paper head has a logits input it does not use; it still loads and runs.
      const saved = serializeDefense(stage);
      const loaded = deserializeDefense(saved.model, saved.meta);
      const r2 = await runners.get(layer)!.runStage(loaded, testActs.get(layer)!.subarray(0, 50 * ref.size), 50);
      assert.deepEqual(r2.scores, run.scores.subarray(0, 500));
      assert.deepEqual(loaded.params, stage.params);
    }
  }
});

test('retrieval: same seed → identical tail models, another seed → another projection', async () => {
  const ref = refs.get(POOL2)!;
  const a = await fitRetrieval(ref, { head: 'tail', seed: 1 });
  const b = await fitRetrieval(ref, { head: 'tail', seed: 1 });
  const c = await fitRetrieval(ref, { head: 'tail', seed: 2 });
  assert.deepEqual(encodeModel(a.model), encodeModel(b.model));
  assert.notDeepEqual(encodeModel(a.model), encodeModel(c.model));
  assert.equal(a.params.projectionDims, 64);
  assert.equal(a.params.attentionScaleValue, 1 / 32);
  JSON.parse(serializeDefense(a).meta);
});
