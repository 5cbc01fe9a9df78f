/**
 * The shared maths of the LESCI and retrieval defenses, against independent references: the
 * symmetric eigensolver and PCA against a cyclic Jacobi solver written here, randomized PCA against
 * exact PCA on real activations, the ONNX k-NN subgraph against brute force on the demo model's
 * activations, and the LSH probe order.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadDataset, preprocess } from '../../src/core/data';
import { referenceActivations, type ReferenceActivations } from '../../src/core/defenses/activations';
import { addKnnSearch, knnSearch, pairDistance, type Distance } from '../../src/core/defenses/knn';
import { symmetricEigen } from '../../src/core/defenses/linalg';
import { LshIndex, probeKeys } from '../../src/core/defenses/lsh';
import { fitPca, pcaTransform } from '../../src/core/defenses/pca';
import { inspectModel } from '../../src/core/eval/model-session';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { DataType, encodeModel } from '../../src/core/onnx/proto';
import { Rng } from '../../src/core/random';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';

const POOL2 = '/features/features.5/MaxPool_output_0';
const FC1 = '/classifier/classifier.2/Relu_output_0';

/** Cyclic Jacobi eigenvalue algorithm (the textbook one): an independent reference. */
function jacobiEigen(input: ArrayLike<number>, n: number): { values: number[]; vectors: number[][] } {
  const a = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => input[i * n + j]));
  const v: number[][] = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p][q] ** 2;
    if (off < 1e-26) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k][p];
          const akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p][k];
          const aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k][p];
          const vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j][j] - a[i][i]);
  return { values: order.map((i) => a[i][i]), vectors: order.map((i) => v.map((row) => row[i])) };
}

/** A random n × d matrix with well separated principal variances (distinct eigen gaps). */
function separatedMatrix(n: number, d: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] = rng.normal() * 3 * 0.8 ** j + 0.5 * j;
  // Rotate with a random orthogonal-ish mix so that the directions are not the axes.
  const mix = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) mix[i * d + j] = (i === j ? 1 : 0) + (0.3 * rng.normal()) / Math.sqrt(d);
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[i * d + k] * mix[k * d + j];
      out[i * d + j] = s;
    }
  return out;
}

function covariance(x: Float32Array, n: number, d: number): Float64Array {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j] / n;
  const c = new Float64Array(d * d);
  for (let i = 0; i < n; i++)
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) c[a * d + b] += ((x[i * d + a] - mean[a]) * (x[i * d + b] - mean[b])) / (n - 1);
  return c;
}

test('symmetricEigen equals a cyclic Jacobi solver and gives orthonormal eigenvectors', () => {
  const n = 30;
  const rng = new Rng(7);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.normal();
  const { values, vectors } = symmetricEigen(a, n);
  const ref = jacobiEigen(a, n);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(values[i] - ref.values[i]) < 1e-9, `eigenvalue ${i}: ${values[i]} vs Jacobi ${ref.values[i]}`);
  for (let j = 0; j < n; j++) {
    // A v = λ v, and v agrees with Jacobi's up to sign.
    let residual = 0;
    let dot = 0;
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let k = 0; k < n; k++) av += a[i * n + k] * vectors[k * n + j];
      residual = Math.max(residual, Math.abs(av - values[j] * vectors[i * n + j]));
      dot += vectors[i * n + j] * ref.vectors[j][i];
    }
    assert.ok(residual < 1e-10, `residual ${residual}`);
    assert.ok(Math.abs(Math.abs(dot) - 1) < 1e-8, `eigenvector ${j}: |cos| ${Math.abs(dot)}`);
    for (let k = 0; k < j; k++) {
      let o = 0;
      for (let i = 0; i < n; i++) o += vectors[i * n + j] * vectors[i * n + k];
      assert.ok(Math.abs(o) < 1e-12);
    }
  }
});

for (const [label, n, d] of [
  ['Gram branch (n < D)', 25, 40],
  ['covariance branch (n > D)', 120, 14],
] as const) {
  test(`exact PCA (${label}) equals the Jacobi eigendecomposition of the covariance`, async () => {
    const x = separatedMatrix(n, d, n + d);
    const r = 8;
    const pca = (await fitPca(x, n, d, r, { method: 'exact' }))!;
    assert.equal(pca.method, 'exact');
    assert.equal(pca.dims, r);
    const ref = jacobiEigen(covariance(x, n, d), d);
    const total = ref.values.reduce((s, v) => s + Math.max(v, 0), 0);
    assert.ok(Math.abs(pca.totalVariance - total) < 1e-6 * total);
    for (let c = 0; c < r; c++) {
      assert.ok(Math.abs(pca.variances[c] - ref.values[c]) < 1e-6 * ref.values[0], `variance ${c}: ${pca.variances[c]} vs ${ref.values[c]}`);
      let dot = 0;
      for (let j = 0; j < d; j++) dot += pca.components[c * d + j] * ref.vectors[c][j];
      assert.ok(Math.abs(Math.abs(dot) - 1) < 1e-5, `direction ${c}: |cos| ${Math.abs(dot)}`);
    }
    // pcaTransform is (x − mean)·vᵀ.
    const z = pcaTransform(pca, x, n);
    for (let i = 0; i < n; i += 7) {
      for (let c = 0; c < r; c++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += (x[i * d + j] - pca.mean[j]) * pca.components[c * d + j];
        assert.ok(Math.abs(z[i * r + c] - s) < 1e-6 * (1 + Math.abs(s)));
      }
    }
    // The reduced coordinates are uncorrelated with the fitted variances.
    for (let c = 0; c < 3; c++) {
      let v = 0;
      for (let i = 0; i < n; i++) v += z[i * r + c] ** 2 / (n - 1);
      assert.ok(Math.abs(v - pca.variances[c]) < 1e-4 * pca.variances[c]);
    }
  });
}

test('PCA: r = 0 is off, rank deficiency drops directions, randomized equals exact on a small matrix', async () => {
  assert.equal(await fitPca(new Float32Array(12), 4, 3, 0), undefined);
  const few = separatedMatrix(5, 20, 3);
  const pca = (await fitPca(few, 5, 20, 10))!;
  assert.ok(pca.dims <= 4, `5 points span at most 4 directions, got ${pca.dims}`);
  const x = separatedMatrix(200, 60, 11);
  const exact = (await fitPca(x, 200, 60, 6, { method: 'exact' }))!;
  const rand = (await fitPca(x, 200, 60, 6, { method: 'randomized', seed: 3 }))!;
  assert.equal(rand.method, 'randomized');
  for (let c = 0; c < 6; c++) {
    assert.ok(Math.abs(rand.variances[c] - exact.variances[c]) < 1e-4 * exact.variances[0]);
    let dot = 0;
    for (let j = 0; j < 60; j++) dot += rand.components[c * 60 + j] * exact.components[c * 60 + j];
    assert.ok(dot > 0.999, `direction ${c}: cos ${dot} (signs are normalised, so same sign)`);
  }
});

let pool2: ReferenceActivations;
let fc1: ReferenceActivations;
let fc1Test: ReferenceActivations;

before(async () => {
  const model = await inspectModel(DEMO_MODEL);
  const load = async (p: string, l: string, limit: number) => {
    const raw = await loadDataset({ path: p, labelsPath: l, limit });
    return { x: preprocess(raw, { layout: 'NCHW', channels: 1, height: 28, width: 28 }), labels: raw.labels!, count: raw.count };
  };
  const train = await load(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, 800);
  const testSet = await load(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 200);
  pool2 = await referenceActivations(model, POOL2, train.x, train.count, train.labels, { threads: 2 });
  fc1 = await referenceActivations(model, FC1, train.x, train.count, train.labels, { threads: 2 });
  fc1Test = await referenceActivations(model, FC1, testSet.x, testSet.count, testSet.labels, { threads: 2 });
});

test('reference activations: shapes, labels, and predictions of the full model', () => {
  assert.deepEqual(pool2.dims, [64, 4, 4]);
  assert.equal(pool2.size, 1024);
  assert.equal(pool2.activations.length, 800 * 1024);
  assert.deepEqual(fc1.dims, [256]);
  assert.equal(fc1.numClasses, 10);
  assert.deepEqual(Array.from(fc1.predictions), Array.from(pool2.predictions));
  const acc = fc1.predictions.filter((p, i) => p === fc1.labels[i]).length / fc1.n;
  assert.ok(acc > 0.85 && acc < 1, `train accuracy ${acc}`);
  assert.ok(
    fc1.activations.every((v) => v >= 0),
    'ReLU output',
  );
});

test('randomized PCA on demo activations (pool2, D = 1024) matches exact PCA', async () => {
  const r = 32;
  const exact = (await fitPca(pool2.activations, pool2.n, pool2.size, r, { method: 'exact' }))!;
  const rand = (await fitPca(pool2.activations, pool2.n, pool2.size, r, { method: 'randomized', seed: 1, threads: 2 }))!;
  const D = pool2.size;
  // Leading variances agree closely; each of the 16 leading exact directions lies in the randomized subspace.
  for (let c = 0; c < 16; c++) {
    assert.ok(Math.abs(rand.variances[c] - exact.variances[c]) < 2e-3 * exact.variances[c], `variance ${c}: ${rand.variances[c]} vs ${exact.variances[c]}`);
    let inSpan = 0;
    for (let q = 0; q < r; q++) {
      let dot = 0;
      for (let j = 0; j < D; j++) dot += exact.components[c * D + j] * rand.components[q * D + j];
      inSpan += dot * dot;
    }
    assert.ok(inSpan > 0.995, `exact direction ${c}: ${inSpan} of it in the randomized subspace`);
  }
  // Both capture the same share of the variance.
  const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum(rand.variances) - sum(exact.variances)) < 2e-3 * sum(exact.variances));
});

/** Runs the ONNX k-NN subgraph as a model over the queries. */
async function onnxKnn(queries: Float32Array, nq: number, ref: Float32Array, n: number, d: number, k: number, distance: Distance) {
  const g = new GraphBuilder();
  addKnnSearch(g, 'q', ref, n, d, k, distance, { indices: 'idx', distances: 'dist' });
  const model = makeModel(
    g.graph('knn', [tensorValueInfo('q', ['N', d])], [tensorValueInfo('idx', ['N', k], DataType.INT64), tensorValueInfo('dist', ['N', k])]),
  );
  const s = await ort.InferenceSession.create(encodeModel(model));
  try {
    const out = await s.run({ q: new ort.Tensor('float32', queries, [nq, d]) });
    return { indices: Int32Array.from(out.idx.data as BigInt64Array, Number), distances: out.dist.data as Float32Array };
  } finally {
    await s.release();
  }
}

for (const distance of ['cosine', 'l2'] as const) {
  test(`ONNX k-NN (${distance}) equals brute-force JS k-NN on demo activations`, async () => {
    const k = 10;
    const d = fc1.size;
    const onnx = await onnxKnn(fc1Test.activations, fc1Test.n, fc1.activations, fc1.n, d, k, distance);
    const js = knnSearch(fc1Test.activations, fc1Test.n, fc1.activations, fc1.n, d, k, distance);
    let same = 0;
    for (let a = 0; a < fc1Test.n; a++) {
      for (let m = 0; m < k; m++) {
        const i = onnx.indices[a * k + m];
        if (i === js.indices[a * k + m]) same++;
        // Wherever they differ it is a float32 near-tie: ONNX's m-th neighbour is as near as JS's m-th.
        const exactDist = pairDistance(fc1Test.activations, a * d, fc1.activations, i * d, d, distance);
        const scale = distance === 'l2' ? Math.max(js.distances[a * k], 1) : 1;
        assert.ok(
          Math.abs(exactDist - js.distances[a * k + m]) <= 1e-5 * scale + 1e-4 * js.distances[a * k + m],
          `query ${a} rank ${m}: ${exactDist} vs ${js.distances[a * k + m]}`,
        );
        assert.ok(Math.abs(onnx.distances[a * k + m] - exactDist) <= 1e-3 * scale, `reported distance ${onnx.distances[a * k + m]} vs ${exactDist}`);
      }
    }
    assert.ok(same / (fc1Test.n * k) > 0.98, `identical neighbours ${same} of ${fc1Test.n * k}`);
  });
}

test('k-NN: ties go to the lower index in both implementations; leave-one-out skips the row', async () => {
  // Rows 1 and 3 are identical; the query is nearest to them.
  const ref = Float32Array.from([5, 5, 1, 0, -3, 2, 1, 0, 0, 9]);
  for (const distance of ['l2', 'cosine'] as const) {
    const js = knnSearch(Float32Array.from([1, 0.1]), 1, ref, 5, 2, 3, distance);
    const onnx = await onnxKnn(Float32Array.from([1, 0.1]), 1, ref, 5, 2, 3, distance);
    assert.deepEqual(Array.from(js.indices.subarray(0, 2)), [1, 3]);
    assert.deepEqual(Array.from(onnx.indices.subarray(0, 2)), [1, 3]);
  }
  const loo = knnSearch(ref, 5, ref, 5, 2, 2, 'l2', (q) => q);
  for (let q = 0; q < 5; q++) assert.ok(!Array.from(loo.indices.subarray(q * 2, q * 2 + 2)).includes(q));
  assert.deepEqual(Array.from(loo.indices.subarray(2, 4)), [3, 2], 'row 1 finds its twin row 3 first, then (-3, 2) at squared distance 20');
});

test('LSH: multi-probe order is by Σ margin² of the flipped bits and enumerates every bucket once', () => {
  const margins = Float64Array.from([0.5, -0.1, 2, -0.3]);
  const key = 0b0101; // bits 0 and 2 set (positive margins)
  const keys = probeKeys(key, margins, 15);
  assert.equal(keys.length, 16);
  assert.equal(new Set(keys).size, 16);
  assert.equal(keys[0], key);
  const score = (k: number) => [0, 1, 2, 3].reduce((s, b) => s + (((k ^ key) >> b) & 1 ? margins[b] ** 2 : 0), 0);
  for (let i = 1; i < keys.length; i++) assert.ok(score(keys[i]) >= score(keys[i - 1]) - 1e-15, `probe ${i} out of order`);
  assert.equal(keys[1], key ^ 0b0010, 'first flip: the bit with the smallest |margin|');
  // With every bucket probed, the candidates are the whole database.
  const x = separatedMatrix(300, 8, 5);
  const lsh = new LshIndex(x, 300, 8, 'l2', { tables: 1, bits: 6, probes: 63 }, 0);
  assert.equal(lsh.candidates(x, 0).length, 300);
  // And few probes see a fraction of it.
  const small = new LshIndex(x, 300, 8, 'l2', { tables: 2, bits: 6, probes: 2 }, 0);
  assert.ok(small.candidates(x, 0).length < 150);
});
