/**
 * The adaptive threat model's variants (issue "Verdicts a reviewer would sign"):
 * - LESCI vote: the soft-vote surrogate aimed at t_projection and the bypass route, whose scores
 *   are checked against a float64 re-computation of their formulas on a random reference set;
 * - retrieval: the attacker that knows only its own labelled data, whose surrogate must carry none
 *   of the private database and must equal a soft nearest-neighbour computed in JS over keys the
 *   test projects itself;
 * - end to end: an evaluation runs each variant as its own threat (adaptive/<id>), the union worst
 *   case counts them, and the variants apply only where they should (vote mode, not vq).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { referenceActivations, type ReferenceActivations } from '../../src/core/defenses/activations';
import { fitLesci } from '../../src/core/defenses/lesci';
import { RETRIEVAL_TENSORS, fitRetrieval } from '../../src/core/defenses/retrieval';
import { attackerRows, softKnnStage, softVoteStage, type SoftVoteRoute } from '../../src/core/defenses/soft-knn';
import { DEFENSE_IO, type DefenseStage } from '../../src/core/defenses/types';
import { runEvaluation } from '../../src/core/eval/evaluate';
import { inspectModel } from '../../src/core/eval/model-session';
import { encodeModel } from '../../src/core/onnx/proto';
import { tensorFloat32 } from '../../src/core/onnx/tensor-proto';
import { Rng } from '../../src/core/random';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';

const POOL2 = '/features/features.5/MaxPool_output_0';

async function runStage(stage: DefenseStage, activation: Float32Array, dims: number[], logits: Float32Array, classes: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(encodeModel(stage.model));
  try {
    const n = activation.length / dims.reduce((a, b) => a * b, 1);
    const out = await s.run({
      [DEFENSE_IO.activation]: new ort.Tensor('float32', activation, [n, ...dims]),
      [DEFENSE_IO.logits]: new ort.Tensor('float32', logits, [n, classes]),
    });
    return out[DEFENSE_IO.scores].data as Float32Array;
  } finally {
    await s.release();
  }
}

// ------------------------------------------------------------- float64 reference of the surrogates

/** Rows as the search sees them: normalised for cosine (√(‖v‖² + ε²), ε = 1e-12). */
function searchRows(rows: Float64Array[], distance: 'cosine' | 'l2'): Float64Array[] {
  if (distance === 'l2') return rows;
  return rows.map((r) => {
    const norm = Math.sqrt(r.reduce((a, v) => a + v * v, 0) + 1e-24);
    return r.map((v) => v / norm);
  });
}

const sqDist = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0);

/** Median over the rows of the nearest and the k-th nearest positive squared distance to another row. */
function gaps(rows: Float64Array[], k: number): { nearest: number; kth: number } {
  const nearest: number[] = [];
  const kth: number[] = [];
  rows.forEach((r, i) => {
    const d = rows
      .filter((_, j) => j !== i)
      .map((o) => sqDist(r, o))
      .filter((v) => v > 0)
      .sort((a, b) => a - b);
    nearest.push(d[0]);
    kth.push(d[Math.min(k, d.length) - 1]);
  });
  const median = (v: number[]) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
  return { nearest: median(nearest), kth: median(kth) };
}

function queryDistances(q: Float64Array, rows: Float64Array[], distance: 'cosine' | 'l2'): number[] {
  const [qs] = searchRows([q], distance);
  return rows.map((r) => sqDist(qs, r));
}

/** z_c of the soft-vote surrogate, from its formula. */
function softVoteReference(
  q: Float64Array,
  logits: number[],
  rows: Float64Array[],
  labels: number[],
  k: number,
  t: number,
  route: SoftVoteRoute,
  distance: 'cosine' | 'l2',
) {
  const g = gaps(rows, k);
  const tau = Math.max(g.kth - g.nearest, g.nearest);
  const dist = queryDistances(q, rows, distance);
  const m = Math.min(...dist);
  const w = dist.map((d) => Math.exp(-(d - m) / tau));
  const total = w.reduce((a, b) => a + b, 0);
  const shares = logits.map((_, c) => w.reduce((a, wi, i) => a + (labels[i] === c ? wi : 0), 0) / total);
  return logits.map((z, c) => (route === 'threshold' ? 30 * Math.max(shares[c] - t, 0) + z : z + Math.log(shares[c] + 1e-6)));
}

/** s_c of the soft nearest-neighbour surrogate, from its formula. */
function softKnnReference(q: Float64Array, rows: Float64Array[], labels: number[], classes: number, distance: 'cosine' | 'l2') {
  const tau = gaps(rows, 1).nearest;
  const dist = queryDistances(q, rows, distance);
  return Array.from({ length: classes }, (_, c) =>
    Math.log(dist.reduce((a, d, i) => a + (labels[i] === c ? Math.exp(Math.max(-d / tau, -80)) : 0), 0) + 1e-35),
  );
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]));
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * scale, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

// ------------------------------------------------------------------------------------------ tests

for (const distance of ['l2', 'cosine'] as const) {
  test(`LESCI vote soft-vote surrogates (${distance}): scores equal the formula, both routes`, async () => {
    const rng = new Rng(7);
    const rand = () => rng.next();
    const n = 60,
      d = 5,
      classes = 3,
      k = 7,
      t = 0.5;
    const points = Array.from({ length: n }, (_, i) => Float64Array.from({ length: d }, () => rand() + (i % classes)));
    const labels = points.map((_, i) => i % classes);
    const ref: ReferenceActivations = {
      layer: 'tiny',
      dims: [d],
      size: d,
      n,
      activations: Float32Array.from(points.flatMap((p) => [...p])),
      labels: Int32Array.from(labels),
      predictions: Int32Array.from(labels),
      numClasses: classes,
      opset: 13,
    };
    const stage = await fitLesci(ref, { mode: 'vote', k, tProjection: t, distance, pcaDims: 0 });
    // The rows exactly as stored (float32), the reference computes from them.
    const stored = Array.from({ length: n }, (_, i) => Float64Array.from(ref.activations.subarray(i * d, (i + 1) * d)));
    const queries = Array.from({ length: 8 }, () => Float64Array.from({ length: d }, () => 3 * rand()));
    const logits = Array.from({ length: queries.length * classes }, () => 4 * rand() - 2);
    for (const route of ['threshold', 'bypass'] as const) {
      const surrogate = softVoteStage({ stage, query: 'lesci_reduced', labels, numClasses: classes, distance, k, tProjection: t, route });
      const got = await runStage(surrogate, Float32Array.from(queries.flatMap((q) => [...q])), [d], Float32Array.from(logits), classes);
      const rows = searchRows(stored, distance);
      const expected = queries.flatMap((q, i) => softVoteReference(q, logits.slice(i * classes, (i + 1) * classes), rows, labels, k, t, route, distance));
      assertClose(got, expected, 2e-4, `${route} scores`);
    }
  });
}

test("retrieval, attacker without the private database: the surrogate's rows are the attacker's own keys, none of the database's", async () => {
  const model = await inspectModel(DEMO_MODEL);
  const db = await demoImages(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, 300);
  const own = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 150);
  const dbActs = await referenceActivations(model, POOL2, db.x, 300, db.labels);
  const ownActs = await referenceActivations(model, POOL2, own.x.subarray(0, 120 * 784), 120, own.labels.subarray(0, 120));
  const queryActs = await referenceActivations(model, POOL2, own.x.subarray(120 * 784), 30, own.labels.subarray(120));
  const stage = await fitRetrieval(dbActs, { head: 'tail', neighbours: 5, projectionDims: 16, seed: 3 });

  const { rows, labels } = await attackerRows(stage, RETRIEVAL_TENSORS.key, ownActs, 1);
  assert.equal(rows.n, 120);
  assert.equal(rows.d, 16);
  const surrogate = softKnnStage({ stage, query: RETRIEVAL_TENSORS.key, labels, numClasses: 10, distance: 'l2', rows });
  assert.equal(surrogate.params.rowSource, "the attacker's own labelled data");
  // No initializer of the surrogate is (a copy of) the private database's keys or labels.
  const privateNames = new Set(
    (stage.model.graph!.initializer ?? []).filter((t) => /knn_reference|retrieval_labels|retrieval_database/.test(t.name ?? '')).map((t) => t.name),
  );
  assert.ok(privateNames.size > 0, 'the fitted stage stores its database');
  for (const init of surrogate.model.graph!.initializer ?? []) {
    assert.ok(!privateNames.has(init.name), `the surrogate carries ${init.name}`);
    assert.ok(Number(init.dims?.[1] ?? 0) !== 300 && Number(init.dims?.[0] ?? 0) !== 300, `the surrogate carries a 300-row tensor (${init.name})`);
  }

  // Keys projected here with the stage's own projection matrix, then the soft k-NN formula in float64.
  const projection = tensorFloat32(stage.model.graph!.initializer!.find((t) => t.name === RETRIEVAL_TENSORS.projection)!);
  const D = ownActs.size,
    p = 16;
  const project = (acts: Float32Array, i: number) =>
    Float64Array.from({ length: p }, (_, c) => {
      let s = 0;
      for (let j = 0; j < D; j++) s += acts[i * D + j] * projection[j * p + c];
      return s;
    });
  const ownKeys = Array.from({ length: 120 }, (_, i) => project(ownActs.activations, i));
  const got = await runStage(surrogate, queryActs.activations, queryActs.dims, new Float32Array(30 * 10), 10);
  const expected = Array.from({ length: 30 }, (_, i) => softKnnReference(project(queryActs.activations, i), ownKeys, [...labels], 10, 'l2')).flat();
  assertClose(got, expected, 2e-3, 'own-data soft k-NN scores');
});

const common = { data: DEMO_TEST_IMAGES, labels: DEMO_TEST_LABELS, batchSize: 100, threads: 0, ep: 'cpu' as const, seed: 0, limit: 100 };
const cacheDir = mkdtempSync(path.join(tmpdir(), 'rlab-variants-'));
const lesciPlan = (mode: 'vq' | 'vote') => ({
  kind: 'lesci' as const,
  layer: POOL2,
  reference: DEMO_TRAIN_IMAGES,
  referenceLabels: DEMO_TRAIN_LABELS,
  referenceLimit: 1000,
  threats: ['adaptive' as const],
  lesci: { mode },
});

test('an evaluation runs each adaptive variant as its own threat, and the union worst case counts them', async () => {
  const attacks = { names: ['pgd'], eps: [0.05], norm: 'linf' as const, steps: 10 };
  const vote = await runEvaluation({ ...common, model: DEMO_MODEL, cacheDir, attacks, defense: lesciPlan('vote') });
  const threats = vote.attacks!.filter((a) => a.target === 'defended').map((a) => a.threat);
  assert.deepEqual(threats, ['adaptive', 'adaptive/soft-vote', 'adaptive/vote-bypass']);
  assert.ok(vote.defense!.threats['adaptive/soft-vote'].includes('t_projection'));
  const clean = vote.defense!.clean.accuracy;
  for (const a of vote.attacks!.filter((a) => a.target === 'defended')) {
    assert.ok(a.accuracy < clean - 0.05, `${a.threat} barely moves the vote: ${a.accuracy} against clean ${clean}`);
    assert.ok(vote.defense!.worstCase[0].accuracy <= a.accuracy + 1e-12, 'the union is at most every single attack');
  }
  assert.ok(
    (vote.checks ?? []).some((c) => c.id === 'unbounded' && c.threat === 'adaptive/vote-bypass'),
    'each variant gets its own unbounded check',
  );

  const vq = await runEvaluation({ ...common, model: DEMO_MODEL, cacheDir, attacks, defense: lesciPlan('vq') });
  assert.deepEqual(
    vq.attacks!.filter((a) => a.target === 'defended').map((a) => a.threat),
    ['adaptive'],
    'the vote variants do not apply to vq',
  );
});
