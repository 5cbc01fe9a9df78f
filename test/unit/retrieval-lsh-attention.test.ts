/**
 * The retrieval defense as the paper specifies it: LSH search inside the defended ONNX model and
 * the learned attention matrix U.
 *  - The graph's LSH (sign bits, ±1 codes, Hamming-ball multi-probe, masked exact distances, TopK)
 *    against the JS LSH index (lsh.ts, bucket look-ups) with the same seed, on the demo activations:
 *    the same candidates and the same neighbours; recall against exact search above a stated bound;
 *    the fallback to exact search when a query has fewer than N candidates.
 *  - One training step of U (with the paper head, and with the tail objective) against PyTorch
 *    (scripts/reference_retrieval_attention.py, test/fixtures/retrieval-attention-reference.json).
 *  - U = I reproduces the identity-attention model exactly; leave-one-out never retrieves the
 *    sample itself; the learned-U graph equals the JS attention with the same U.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CutRunner, referenceActivations, type InspectedModel, type ReferenceActivations } from '../../src/core/defenses/activations';
import { knnSearch } from '../../src/core/defenses/knn';
import {
  RETRIEVAL_TENSORS,
  attentionTrainingModel,
  buildRetrievalIndex,
  fitRetrieval,
  leaveOneOutSamples,
  lshCheck,
  projectRows,
  retrievalAttend,
  retrievalSearch,
  type RetrievalIndex,
} from '../../src/core/defenses/retrieval';
import { addRetrievalAttention, retrievalInitializers } from '../../src/core/defenses/retrieval/graph';
import { DEFENSE_IO, type DefenseStage } from '../../src/core/defenses/types';
import { UserError } from '../../src/core/errors';
import { inspectModel } from '../../src/core/eval/model-session';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { DataType, encodeModel, type ModelProto } from '../../src/core/onnx/proto';
import { tensorFloat32 } from '../../src/core/onnx/tensor-proto';
import { Trainer, type DenseLayer } from '../../src/core/train';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';

const POOL2 = '/features/features.5/MaxPool_output_0';
const FC1 = '/classifier/classifier.2/Relu_output_0';
/** The recall@N bound of the default LSH (8 tables, auto bits, radius 1) against exact search on the demo (measured 0.99+). */
const RECALL_BOUND = 0.95;

let model: InspectedModel;
const refs = new Map<string, ReferenceActivations>();
const testActs = new Map<string, Float32Array>();
let testLabels: Int32Array;
const COUNT = 300;

before(async () => {
  model = await inspectModel(DEMO_MODEL);
  const train = await demoImages(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, 2000);
  const testSet = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, COUNT);
  testLabels = testSet.labels;
  for (const layer of [FC1, POOL2]) {
    refs.set(layer, await referenceActivations(model, layer, train.x, train.count, train.labels, { threads: 2 }));
    const runner = await CutRunner.create(model, layer, { threads: 2 });
    try {
      testActs.set(layer, await runner.activations(testSet.x, testSet.count));
    } finally {
      await runner.release();
    }
  }
});

/** Runs a retrieval graph with its internals as outputs. */
async function internals(m: ModelProto, act: Float32Array, count: number, dims: number[], N: number, D: number, lsh: boolean) {
  const g = structuredClone(m);
  g.graph!.output = [
    tensorValueInfo(RETRIEVAL_TENSORS.indices, ['B', N], DataType.INT64),
    tensorValueInfo(RETRIEVAL_TENSORS.hbar, ['B', D]),
    ...(lsh ? [tensorValueInfo(RETRIEVAL_TENSORS.candidates, ['B', 'n'], DataType.BOOL)] : []),
  ];
  const s = await ort.InferenceSession.create(encodeModel(g));
  try {
    const out = await s.run({ [DEFENSE_IO.activation]: new ort.Tensor('float32', act, [count, ...dims]) });
    return {
      indices: Int32Array.from(out[RETRIEVAL_TENSORS.indices].data as BigInt64Array, Number),
      hbar: out[RETRIEVAL_TENSORS.hbar].data as Float32Array,
      candidates: lsh ? (out[RETRIEVAL_TENSORS.candidates].data as Uint8Array) : undefined,
    };
  } finally {
    await s.release();
  }
}

/** The tail graph of an index (the fit's graph, built directly so that the index's U can be set). */
function tailGraph(index: RetrievalIndex, search: 'exact' | 'lsh'): ModelProto {
  const g = new GraphBuilder('retrieval/');
  const { hbar } = addRetrievalAttention(g, index, search);
  g.node('Reshape', [hbar, g.int64Const('shape', [-1, ...index.dims])], {}, [DEFENSE_IO.activationOut]);
  const graph = g.graph(
    'retrieval_tail',
    [tensorValueInfo(DEFENSE_IO.activation, ['N', ...index.dims])],
    [tensorValueInfo(DEFENSE_IO.activationOut, ['N', ...index.dims])],
    retrievalInitializers(index),
  );
  return makeModel(graph, 13);
}

function recall(a: Int32Array, b: Int32Array, N: number, count: number): number {
  let hit = 0;
  for (let q = 0; q < count; q++) {
    const s = new Set(b.subarray(q * N, (q + 1) * N));
    for (const i of a.subarray(q * N, (q + 1) * N)) if (s.has(i)) hit++;
  }
  return hit / (count * N);
}

for (const [layer, distance, lshOptions] of [
  [FC1, 'l2', {}],
  [POOL2, 'cosine', {}],
  // Few candidates: one table of 11 bits, no multi-probe; many queries fall back to exact search.
  [FC1, 'l2', { tables: 1, bits: 11, radius: 0 }],
] as const) {
  test(`LSH in the graph (${layer}, ${distance}, ${JSON.stringify(lshOptions)}): the same candidates and neighbours as the JS LSH, recall against exact search`, async (t) => {
    const ref = refs.get(layer)!;
    const act = testActs.get(layer)!;
    const N = 10;
    const D = ref.size;
    const stage = await fitRetrieval(ref, { head: 'tail', neighbours: N, distance, search: 'lsh', lsh: lshOptions, seed: 4 });
    assert.equal(stage.params.search, 'lsh');
    const got = await internals(stage.model, act, COUNT, ref.dims, N, D, true);
    const index = buildRetrievalIndex(ref, { neighbours: N, distance, lsh: lshOptions, seed: 4 });
    const q = index.projection ? projectRows(act, COUNT, D, index.projection, index.projectionDims) : act;
    const js = retrievalSearch(index, act, COUNT, { method: 'lsh' });
    const exact = retrievalSearch(index, act, COUNT, { method: 'exact' });
    let clear = 0;
    let sameCandidates = 0;
    let fallbacks = 0;
    let samePositions = 0;
    for (let a = 0; a < COUNT; a++) {
      const cand = index.lsh.candidatesWithin(q, a * index.keyDims);
      const mask = got.candidates!.subarray(a * ref.n, (a + 1) * ref.n);
      const graphCand = [...mask].flatMap((v, i) => (v ? [i] : []));
      const fellBack = cand.length < N;
      if (fellBack) fallbacks++;
      const expected = fellBack ? Array.from({ length: ref.n }, (_, i) => i) : [...cand];
      // A query within float32 rounding of a hyperplane may hash differently in the graph.
      const nearPlane = index.lsh.queryCodes(q, a * index.keyDims).minMargin < 1e-4;
      if (!nearPlane) clear++;
      if (JSON.stringify(graphCand) === JSON.stringify(expected)) sameCandidates++;
      else assert.ok(nearPlane, `query ${a}: different candidates, ${graphCand.length} in the graph and ${expected.length} in JS`);
      for (let m = 0; m < N; m++) if (got.indices[a * N + m] === js.indices[a * N + m]) samePositions++;
    }
    const r = recall(got.indices, exact.indices, N, COUNT);
    t.diagnostic(
      `${clear}/${COUNT} queries clear of the hyperplanes; candidates equal on ${sameCandidates}/${COUNT}; neighbours equal at ${samePositions}/${COUNT * N} positions; ${fallbacks} fallbacks (JS: ${js.fallbacks}); mean candidates ${js.meanCandidates.toFixed(0)} of ${ref.n}; recall@${N} against exact ${r.toFixed(3)}`,
    );
    assert.ok(sameCandidates >= 0.99 * COUNT, `${sameCandidates} queries with equal candidates`);
    assert.equal(fallbacks, js.fallbacks);
    assert.ok(samePositions >= 0.99 * COUNT * N, `${samePositions} equal positions`);
    if (Object.keys(lshOptions).length === 0) {
      assert.ok(r >= RECALL_BOUND, `recall ${r}`);
      assert.ok(js.meanCandidates < 0.5 * ref.n, `candidates ${js.meanCandidates}`);
      // The fit's own check (leave-one-out reference queries) agrees in kind.
      const check = stage.params.lshCheck as { recall: number; accuracyDifference: number };
      assert.ok(check.recall >= RECALL_BOUND, `fit-time recall ${check.recall}`);
      assert.ok(Math.abs(check.accuracyDifference) < 0.02, `accuracy difference ${check.accuracyDifference}`);
    } else {
      assert.ok(fallbacks > 0, 'the narrow LSH leaves some queries with fewer than N candidates');
    }
  });
}

test('lshCheck: its recall equals a direct computation from brute-force exact search and the LSH search', () => {
  const ref = refs.get(FC1)!;
  const index = buildRetrievalIndex(ref, { neighbours: 5, seed: 2 });
  const c = lshCheck(index, 2, undefined, 200);
  assert.equal(c.queries, 200);
  assert.ok(c.recall > 0 && c.recall <= 1);
  // Independent: exact leave-one-out neighbours by brute force for the same rows.
  const check = lshCheck(index, 2, undefined, ref.n);
  const q = index.keys;
  const exact = knnSearch(q, ref.n, index.keys, ref.n, index.keyDims, 5, 'l2', (a) => a);
  const lsh = retrievalSearch(index, ref.activations, ref.n, { method: 'lsh', exclude: (a) => a });
  assert.equal(check.recall, recall(lsh.indices, exact.indices, 5, ref.n));
});

test('learned attention: one training step equals PyTorch (paper head jointly, and the tail objective)', async (t) => {
  const fixture = JSON.parse(readFileSync(path.join(__dirname, '../fixtures/retrieval-attention-reference.json'), 'utf8')) as {
    cases: {
      name: string;
      head: boolean;
      D: number;
      N: number;
      C: number;
      hidden: number | null;
      scale: number;
      learningRate: number;
      x: number[];
      labels: number[];
      mean: number[];
      invStd: number[];
      init: number[][];
      steps: { loss: number; params: number[][] }[];
    }[];
  };
  let worstAll = 0;
  for (const c of fixture.cases) {
    const layers: DenseLayer[] | undefined = c.head
      ? [
          { inputs: c.D + c.C, outputs: c.hidden!, activation: 'relu', w: Float32Array.from(c.init[1]), b: Float32Array.from(c.init[2]) },
          { inputs: c.hidden!, outputs: c.C, activation: 'linear', w: Float32Array.from(c.init[3]), b: Float32Array.from(c.init[4]) },
        ]
      : undefined;
    const { model: m, params } = attentionTrainingModel({
      size: c.D,
      neighbours: c.N,
      numClasses: c.C,
      scale: c.scale,
      U: Float32Array.from(c.init[0]),
      head: layers ? { mean: Float32Array.from(c.mean), invStd: Float32Array.from(c.invStd), layers } : undefined,
    });
    assert.equal(params.length, c.init.length);
    const trainer = await Trainer.create({
      model: m,
      params,
      loss: { kind: 'softmax-ce' },
      optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    });
    try {
      const x = Float32Array.from(c.x);
      const target = BigInt64Array.from(c.labels, (v) => BigInt(v));
      for (const [s, step] of c.steps.entries()) {
        const loss = await trainer.trainBatch(x, target, c.labels.length, c.learningRate);
        assert.ok(Math.abs(loss - step.loss) <= 1e-5 * Math.max(1, Math.abs(step.loss)), `${c.name} step ${s}: loss ${loss} vs ${step.loss}`);
        params.forEach((p, k) => {
          const got = trainer.parameters().get(p)!;
          let worst = 0;
          for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - step.params[k][i]));
          worstAll = Math.max(worstAll, worst);
          assert.ok(worst <= 1e-5, `${c.name} step ${s}: ${p} differs by ${worst}`);
        });
      }
    } finally {
      await trainer.release();
    }
  }
  t.diagnostic(`largest parameter difference from PyTorch over ${fixture.cases.length} cases × 3 Adam steps: ${worstAll.toExponential(2)}`);
});

test('learned attention: U = I reproduces the identity-attention model exactly; the learned graph equals the JS attention', async () => {
  const ref = refs.get(FC1)!;
  const act = testActs.get(FC1)!;
  const N = 10;
  const D = ref.size;
  for (const search of ['exact', 'lsh'] as const) {
    const index = buildRetrievalIndex(ref, { neighbours: N });
    const plain = await internals(tailGraph(index, search), act, COUNT, ref.dims, N, D, false);
    const identity = new Float32Array(D * D);
    for (let j = 0; j < D; j++) identity[j * D + j] = 1;
    const withU = await internals(tailGraph({ ...index, attention: identity }, search), act, COUNT, ref.dims, N, D, false);
    assert.deepEqual(withU.indices, plain.indices);
    assert.deepEqual(withU.hbar, plain.hbar, `${search}: U = I gives the identity model's h̄ bit for bit`);
    // And the fitted identity stage is that very graph.
    const fitted = await fitRetrieval(ref, { head: 'tail', neighbours: N, search });
    const f = await internals(fitted.model, act, COUNT, ref.dims, N, D, false);
    assert.deepEqual(f.hbar, plain.hbar);
  }
  // A learned U (tail objective, 2 epochs): the fitted graph against retrievalAttend with the same U.
  const stage = await fitRetrieval(ref, { head: 'tail', neighbours: N, attention: 'learned', attentionTraining: { epochs: 2 }, seed: 1 });
  const u = stage.model.graph!.initializer!.find((x) => x.name === RETRIEVAL_TENSORS.attentionMatrix)!;
  const U = tensorFloat32(u);
  const at = stage.params.attentionTraining as { distanceFromIdentity: number; finalLoss: number };
  assert.ok(at.distanceFromIdentity > 0, 'U moved from the identity');
  const index = { ...buildRetrievalIndex(ref, { neighbours: N, seed: 1 }), attention: U };
  const got = await internals(stage.model, act, COUNT, ref.dims, N, D, false);
  const js = retrievalAttend(index, act, COUNT, got.indices);
  let worst = 0;
  for (let i = 0; i < js.hbar.length; i++) worst = Math.max(worst, Math.abs(js.hbar[i] - got.hbar[i]) / (1 + Math.abs(js.hbar[i])));
  assert.ok(worst < 1e-4, `learned-U h̄ graph vs JS: ${worst}`);
  // Same seed, same U.
  const again = await fitRetrieval(ref, { head: 'tail', neighbours: N, attention: 'learned', attentionTraining: { epochs: 2 }, seed: 1 });
  assert.deepEqual(encodeModel(again.model), encodeModel(stage.model));
});

test('learned attention: leave-one-out is really left out (a sample never retrieves itself during training)', () => {
  const ref = refs.get(FC1)!;
  const N = 5;
  const D = ref.size;
  const C = ref.numClasses;
  for (const method of ['exact', 'lsh'] as const) {
    const index = buildRetrievalIndex(ref, { neighbours: N });
    const { x, neighbours, width } = leaveOneOutSamples(index, method);
    assert.equal(width, D + N * D + N * C);
    for (let i = 0; i < ref.n; i++) {
      const nb = neighbours.subarray(i * N, (i + 1) * N);
      assert.ok(!nb.includes(i), `${method}: row ${i} retrieved itself`);
      assert.equal(new Set(nb).size, N);
      // The packed row: h_i first, then the neighbours' activations and one-hot labels.
      assert.deepEqual(x.subarray(i * width, i * width + D), ref.activations.subarray(i * D, (i + 1) * D));
      for (let m = 0; m < N; m++) {
        const r = nb[m];
        assert.deepEqual(x.subarray(i * width + D + m * D, i * width + D + (m + 1) * D), ref.activations.subarray(r * D, (r + 1) * D));
        assert.equal(x[i * width + D + N * D + m * C + ref.labels[r]], 1);
      }
    }
    if (method === 'exact') {
      // Independently: brute force with row i excluded.
      const bf = knnSearch(index.keys, ref.n, index.keys, ref.n, index.keyDims, N, 'l2', (q) => q);
      assert.deepEqual(neighbours, bf.indices);
    }
  }
});

test('learned attention: a layer too wide for a D × D matrix is a UserError that says what to do', async () => {
  const ref = refs.get(POOL2)!;
  const wide: ReferenceActivations = { ...ref, dims: [ref.size * 2], size: ref.size * 2, activations: new Float32Array(ref.n * ref.size * 2) };
  await assert.rejects(
    fitRetrieval(wide, { head: 'tail', attention: 'learned' }),
    (e: unknown) => e instanceof UserError && /--attention identity/.test(e.message),
  );
  await assert.rejects(fitRetrieval(ref, { head: 'tail', search: 'fast' as 'lsh' }), UserError);
});

test('LSH clean accuracy of the defended model (tail head) is close to exact search on the demo', async (t) => {
  const ref = refs.get(FC1)!;
  const runner = await CutRunner.create(model, FC1, { threads: 2 });
  try {
    const acc = async (stage: DefenseStage) => {
      const run = await runner.runStage(stage, testActs.get(FC1)!, COUNT);
      let c = 0;
      for (let i = 0; i < COUNT; i++) {
        const row = run.scores.subarray(i * 10, (i + 1) * 10);
        if (row.indexOf(Math.max(...row)) === testLabels[i]) c++;
      }
      return c / COUNT;
    };
    const exact = await acc(await fitRetrieval(ref, { head: 'tail', search: 'exact' }));
    const lsh = await acc(await fitRetrieval(ref, { head: 'tail', search: 'lsh' }));
    t.diagnostic(`clean accuracy on ${COUNT} test images: exact ${exact.toFixed(3)}, LSH ${lsh.toFixed(3)}`);
    assert.ok(Math.abs(lsh - exact) <= 0.02, `${lsh} vs ${exact}`);
  } finally {
    await runner.release();
  }
});
