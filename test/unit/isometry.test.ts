/**
 * Isometry per layer (src/core/analysis/isometry.ts) against an independent numpy computation:
 * the test draws the pairs with the seeded sampler, computes the activations at every insertion
 * point with a separate path (one cut head per layer, src/core/defenses/activations.ts), writes
 * both to a temporary folder, and scripts/reference_isometry.py recomputes every statistic from
 * them. Also: the sampler's determinism and its pairs' labels, the statistics on hand-made
 * distances, and the CLI end to end.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isometryLayers, isometryStats, measureIsometry, samplePairs } from '../../src/core/analysis/isometry';
import { averageRanks, spearman } from '../../src/core/analysis/stats';
import { referenceActivations } from '../../src/core/defenses/activations';
import { inspectModel } from '../../src/core/eval/model-session';
import type { IsometryPairStats, IsometryResult, RunResult } from '../../src/protocol/run-result';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, ROOT } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';

/** Both sides compute in float64 from the same float32 activations; only summation order differs. */
const TOLERANCE = 1e-4;
const SAMPLES = 300;
const PAIRS = 400;
const SEED = 7;

let work: string;
before(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rlab-isometry-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

test('pair sampling is seeded: the same labels and seed give the same pairs, another seed others', () => {
  const labels = Int32Array.from({ length: 200 }, (_, i) => (i * 7) % 5);
  const a = samplePairs(labels, 300, 3);
  const b = samplePairs(labels, 300, 3);
  const c = samplePairs(labels, 300, 4);
  for (const kind of ['within', 'between'] as const) {
    assert.deepEqual(a[kind].i, b[kind].i);
    assert.deepEqual(a[kind].j, b[kind].j);
    assert.notDeepEqual(a[kind].i, c[kind].i);
    assert.equal(a[kind].i.length, 300);
  }
  for (let k = 0; k < 300; k++) {
    assert.notEqual(a.within.i[k], a.within.j[k], 'a within-class pair joins two different samples');
    assert.equal(labels[a.within.i[k]], labels[a.within.j[k]]);
    assert.notEqual(labels[a.between.i[k]], labels[a.between.j[k]]);
  }
  // Every sample of a class can be paired with every other one: over many draws, all partners of sample 0 appear.
  const many = samplePairs(labels, 200_000, 1).within;
  const partners = new Set<number>();
  for (let k = 0; k < many.i.length; k++) if (many.i[k] === 0) partners.add(many.j[k]);
  assert.equal(partners.size, labels.filter((l) => l === labels[0]).length - 1);
});

test('pair sampling without a second sample per class or a second class draws no such pairs', () => {
  assert.equal(samplePairs([0, 1, 2], 10, 0).within.i.length, 0);
  assert.equal(samplePairs([0, 1, 2], 10, 0).between.i.length, 10);
  assert.equal(samplePairs([4, 4, 4], 10, 0).between.i.length, 0);
  assert.equal(samplePairs([4, 4, 4], 10, 0).within.i.length, 10);
});

test('statistics on hand-made distances: an exact scaling, ties in the ranks, an uninformative layer', () => {
  const exact = isometryStats(Float64Array.from([1, 2, 3, 4]), Float64Array.from([2, 4, 6, 8]));
  assert.equal(exact.pearson, 1);
  assert.equal(exact.spearman, 1);
  assert.equal(exact.scale, 2);
  assert.equal(exact.distortion, 0);
  assert.deepEqual([...averageRanks([3, 1, 2, 2])], [4, 1, 2.5, 2.5]);
  // By hand: ranks [1, 2.5, 2.5, 4] and [1, 2, 3, 4]: Pearson of those is 4.5 / sqrt(4.5 · 5) = 0.9487.
  assert.ok(Math.abs(spearman([1, 2, 2, 3], [1, 2, 3, 4])! - 4.5 / Math.sqrt(4.5 * 5)) < 1e-12);
  // d_z constant: no correlation is defined; s = Σdx·dz / Σdx² = 10/30; distortion = Σ(s·dx − 1)² / 4.
  const flat = isometryStats(Float64Array.from([1, 2, 3, 4]), Float64Array.from([1, 1, 1, 1]));
  assert.equal(flat.pearson, null);
  assert.ok(Math.abs(flat.scale! - 1 / 3) < 1e-12);
  const expected = [1, 2, 3, 4].reduce((s, d) => s + (d / 3 - 1) ** 2, 0) / 4;
  assert.ok(Math.abs(flat.distortion! - expected) < 1e-12);
});

function close(actual: number | null, expected: number | null, what: string, relative = false): void {
  if (expected === null) return assert.equal(actual, null, what);
  assert.ok(actual !== null, `${what}: null, numpy ${expected}`);
  const err = Math.abs(actual - expected) / (relative ? Math.max(Math.abs(expected), 1e-12) : 1);
  assert.ok(err < TOLERANCE, `${what}: ${actual} vs numpy ${expected} (error ${err})`);
}

test(`isometry of the demo model at every insertion point matches numpy (${SAMPLES} samples, ${PAIRS} pairs each, ${TOLERANCE})`, async (t) => {
  const model = await inspectModel(DEMO_MODEL);
  const data = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, SAMPLES);
  const input = { model, x: data.x, labels: data.labels, count: data.count };
  const onePass = await measureIsometry(input, { pairs: PAIRS, seed: SEED }, { batchSize: 64, threads: 1 });
  // A budget of one small layer forces one pass per layer: the same numbers either way.
  const perLayer = await measureIsometry(input, { pairs: PAIRS, seed: SEED }, { batchSize: 64, threads: 1, budgetValues: 1 });

  const pairs = samplePairs(data.labels, PAIRS, SEED);
  const layers = isometryLayers(model.graph);
  assert.deepEqual(
    onePass.layers.map((l) => l.tensor),
    layers.map((l) => l.tensor),
  );
  assert.equal(layers.length, 10, 'the demo CNN has 10 insertion points after its input');
  writeFileSync(path.join(work, 'input.f32'), Buffer.from(data.x.buffer, data.x.byteOffset, data.x.byteLength));
  const meta = {
    count: data.count,
    inputSize: 784,
    input: 'input.f32',
    layers: [] as { tensor: string; file: string; size: number }[],
    pairs: Object.fromEntries((['within', 'between'] as const).map((k) => [k, { i: [...pairs[k].i], j: [...pairs[k].j] }])),
  };
  for (const [k, l] of layers.entries()) {
    const ref = await referenceActivations(model, l.tensor, data.x, data.count, data.labels, { threads: 1 });
    const file = `layer${k}.f32`;
    writeFileSync(path.join(work, file), Buffer.from(ref.activations.buffer, ref.activations.byteOffset, ref.activations.byteLength));
    meta.layers.push({ tensor: l.tensor, file, size: ref.size });
  }
  writeFileSync(path.join(work, 'meta.json'), JSON.stringify(meta));
  const run = spawnSync('/usr/bin/python3', [path.join(ROOT, 'scripts', 'reference_isometry.py'), '--dir', work], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, `numpy reference failed: ${run.stderr}`);
  const numpy = JSON.parse(run.stdout) as Record<string, Record<'within' | 'between', IsometryPairStats>>;

  for (const result of [onePass, perLayer] as IsometryResult[]) {
    for (const layer of result.layers) {
      for (const kind of ['within', 'between'] as const) {
        const ours = layer[kind];
        const ref = numpy[layer.tensor][kind];
        const what = `${layer.tensor} ${kind}`;
        assert.equal(ours.pairs, ref.pairs, `${what}: pairs`);
        close(ours.pearson, ref.pearson, `${what}: Pearson`);
        close(ours.spearman, ref.spearman, `${what}: Spearman`);
        close(ours.scale, ref.scale, `${what}: scale`, true);
        close(ours.distortion, ref.distortion, `${what}: distortion`);
      }
    }
  }
  t.diagnostic(
    onePass.layers.map((l) => `${l.depth} ${l.op}: within r ${l.within.pearson?.toFixed(3)}, distortion ${l.within.distortion?.toFixed(3)}`).join('; '),
  );
  // The first convolution is linear: it keeps input distances far better than the logits do.
  assert.ok(onePass.layers[0].within.pearson! > onePass.layers[9].within.pearson!);
});

test('isometry CLI: chosen layers, RunResult-compatible --out, and a bad layer named with the insertion points', () => {
  const out = path.join(work, 'iso.json');
  const layers = '/features/features.2/MaxPool,logits';
  const r = cli([
    'isometry',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--limit',
    '200',
    '--pairs',
    '300',
    '--seed',
    '5',
    '--layers',
    layers,
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Isometry per layer/);
  assert.match(r.stdout, /\/features\/features\.2\/MaxPool_output_0/);
  const result = JSON.parse(readFileSync(out, 'utf8')) as RunResult;
  assert.equal(result.clean.count, 200);
  assert.deepEqual(
    result.isometry!.layers.map((l) => [l.tensor, l.depth]),
    [
      ['/features/features.2/MaxPool_output_0', 3],
      ['logits', 10],
    ],
  );
  assert.equal(result.isometry!.layers[0].within.pairs, 300);
  assert.equal(result.isometry!.seed, 5);

  const bad = cli(['isometry', '--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--labels', DEMO_TEST_LABELS, '--limit', '50', '--layers', 'nope']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /no tensor named 'nope'/);
  assert.match(bad.stderr, /insertion points/);
  const empty = cli(['isometry', '--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--labels', DEMO_TEST_LABELS, '--layers', 'logits,']);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /item 2 is empty/);
});
