/**
 * Open-set recognition (dAE paper): AUROC, FPR at 95% TPR and the threshold table against an
 * independent numpy computation (scripts/reference_open_set.py: brute force over every pair, many
 * ties), and `evaluate --unknown` end to end on the demo model. The demo model knows all ten
 * Fashion-MNIST classes, so the unknowns are uniform noise (which a CNN trained on clothes should
 * score lower than clothes: AUROC > 0.5) and inverted test images.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { openSetScorer } from '../../src/core/analysis/open-set';
import { encodeNpyFloat32 } from '../../src/core/data/npy';
import { Rng } from '../../src/core/random';
import type { RunResult } from '../../src/protocol/run-result';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, ROOT } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';

let work: string;
let noise: string;
let inverted: string;
before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rlab-open-set-'));
  const rng = new Rng(11);
  noise = path.join(work, 'noise.npy');
  writeFileSync(noise, encodeNpyFloat32(rng.uniform(new Float32Array(200 * 28 * 28)), [200, 28, 28]));
  // Test images the evaluation below does not use as known inputs (it takes the first 300), inverted.
  const images = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 700);
  inverted = path.join(work, 'inverted.npy');
  writeFileSync(
    inverted,
    encodeNpyFloat32(
      images.x.slice(500 * 784).map((v) => 1 - v),
      [200, 28, 28],
    ),
  );
});
after(() => rmSync(work, { recursive: true, force: true }));

test('AUROC, FPR at 95% TPR and the threshold table match a brute-force numpy computation (scores with many ties)', () => {
  const rng = new Rng(3);
  // Scores on a coarse grid, so that ties within and across the two sets are common.
  const known = Array.from({ length: 400 }, () => Math.round(20 * Math.sqrt(rng.next())) / 20);
  const unknown = Array.from({ length: 250 }, () => Math.round(20 * rng.next() ** 2) / 20);
  const knownCorrect = known.map(() => (rng.next() < 0.8 ? 1 : 0));
  const thresholds = [0, 0.5, 0.9, 0.95, 0.99];
  const ours = openSetScorer('max-softmax', known, knownCorrect, unknown, thresholds);
  const file = path.join(work, 'scores.json');
  writeFileSync(file, JSON.stringify({ known, unknown, knownCorrect, thresholds }));
  const run = spawnSync('/usr/bin/python3', [path.join(ROOT, 'scripts', 'reference_open_set.py'), '--file', file], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, `numpy reference failed: ${run.stderr}`);
  const numpy = JSON.parse(run.stdout) as {
    auroc: number;
    fprAt95Tpr: number;
    thresholdAt95Tpr: number;
    thresholds: { unknownRejectionRate: number; knownRejectionRate: number; acceptedAccuracy: number | null }[];
  };
  assert.ok(Math.abs(ours.auroc - numpy.auroc) < 1e-12, `AUROC ${ours.auroc} vs numpy ${numpy.auroc}`);
  assert.ok(ours.auroc > 0.6 && ours.auroc < 0.99, `a non-trivial example (AUROC ${ours.auroc})`);
  assert.equal(ours.thresholdAt95Tpr, numpy.thresholdAt95Tpr);
  assert.ok(Math.abs(ours.fprAt95Tpr - numpy.fprAt95Tpr) < 1e-12, `FPR@95 ${ours.fprAt95Tpr} vs numpy ${numpy.fprAt95Tpr}`);
  ours.thresholds.forEach((row, k) => {
    const ref = numpy.thresholds[k];
    assert.ok(Math.abs(row.unknownRejectionRate - ref.unknownRejectionRate) < 1e-12, `unknown rejection at ${row.threshold}`);
    assert.ok(Math.abs(row.knownRejectionRate - ref.knownRejectionRate) < 1e-12, `known rejection at ${row.threshold}`);
    if (ref.acceptedAccuracy === null) assert.equal(row.acceptedAccuracy, null);
    else assert.ok(Math.abs(row.acceptedAccuracy! - ref.acceptedAccuracy) < 1e-12, `accepted accuracy at ${row.threshold}`);
  });
});

function evaluate(args: string[]): RunResult {
  const out = path.join(work, `run-${Math.random().toString(36).slice(2)}.json`);
  const r = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--limit',
    '300',
    '--threads',
    '1',
    '--out',
    out,
    ...args,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Open-set recognition: 300 known test inputs/);
  return JSON.parse(readFileSync(out, 'utf8')) as RunResult;
}

test('evaluate --unknown on the demo model: uniform noise scores lower than clothes (AUROC > 0.5), with the counts and thresholds asked for', (t) => {
  const r = evaluate(['--unknown', noise]);
  const o = r.openSet!;
  assert.equal(o.knownCount, 300);
  assert.equal(o.unknown.count, 200);
  assert.equal(o.unknown.format, 'npy');
  assert.equal(o.defended, undefined, 'no defense, no dAE scorer');
  assert.deepEqual(
    o.baseline.thresholds.map((row) => row.threshold),
    [0, 0.5, 0.9, 0.99],
  );
  const zero = o.baseline.thresholds[0];
  assert.equal(zero.unknownRejectionRate, 0);
  assert.equal(zero.knownAccepted, 300);
  assert.equal(zero.acceptedAccuracy, r.clean.accuracy, 'threshold 0 accepts every known input');
  for (let k = 1; k < o.baseline.thresholds.length; k++)
    assert.ok(o.baseline.thresholds[k].unknownRejectionRate >= o.baseline.thresholds[k - 1].unknownRejectionRate, 'a higher threshold rejects more');
  assert.ok(o.baseline.auroc > 0.5, `AUROC ${o.baseline.auroc} for uniform noise`);
  assert.ok(o.baseline.fprAt95Tpr < 1);
  assert.deepEqual([o.baseline.roc.fpr[0], o.baseline.roc.tpr[0]], [0, 0]);
  assert.deepEqual([o.baseline.roc.fpr.at(-1), o.baseline.roc.tpr.at(-1)], [1, 1]);
  t.diagnostic(`noise: AUROC ${o.baseline.auroc.toFixed(4)}, FPR@95%TPR ${o.baseline.fprAt95Tpr.toFixed(4)}`);

  const limited = evaluate(['--unknown', inverted, '--unknown-limit', '50', '--unknown-thresholds', '0.8']);
  assert.equal(limited.openSet!.unknown.count, 50);
  assert.deepEqual(
    limited.openSet!.baseline.thresholds.map((row) => row.threshold),
    [0.8],
  );
  t.diagnostic(`inverted (50): AUROC ${limited.openSet!.baseline.auroc.toFixed(4)}, FPR@95%TPR ${limited.openSet!.baseline.fprAt95Tpr.toFixed(4)}`);
});

test("evaluate --unknown --defense dae: the dAE's confidence is scored too, at the dAE plan's thresholds as well", (t) => {
  const r = evaluate([
    '--unknown',
    noise,
    '--defense',
    'dae',
    '--layer',
    '/features/features.5/MaxPool_output_0',
    '--reference',
    DEMO_TRAIN_IMAGES,
    '--reference-labels',
    DEMO_TRAIN_LABELS,
    '--reference-limit',
    '1000',
    '--epochs',
    '5',
    '--thresholds',
    '0.7,0.9',
    '--cache-dir',
    path.join(work, 'cache'),
  ]);
  const o = r.openSet!;
  assert.ok(o.defended, 'the dAE scorer is present');
  assert.equal(o.defended.score, 'dae-confidence');
  assert.deepEqual(
    o.defended.thresholds.map((row) => row.threshold),
    [0, 0.5, 0.7, 0.9, 0.99],
  );
  // At threshold 0.7 the dAE's own table (clean, defended) and the open-set table agree on the known inputs.
  const own = r.defense!.thresholds!.defended.find((row) => row.threshold === 0.7)!;
  const open = o.defended.thresholds.find((row) => row.threshold === 0.7)!;
  assert.equal(open.knownAccepted, own.accepted);
  assert.equal(open.acceptedAccuracy, own.acceptedAccuracy);
  t.diagnostic(`noise, dAE: AUROC ${o.defended.auroc.toFixed(4)} (undefended ${o.baseline.auroc.toFixed(4)})`);
});

test('bad --unknown input is a user error naming the flag or file', () => {
  const stray = cli(['evaluate', '--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--labels', DEMO_TEST_LABELS, '--unknown-limit', '5']);
  assert.equal(stray.code, 2);
  assert.match(stray.stderr, /--unknown-limit only applies together with --unknown/);
  const missing = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--unknown',
    path.join(work, 'absent.npy'),
  ]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /absent\.npy/);
  const threshold = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--unknown',
    noise,
    '--unknown-thresholds',
    '1.5',
  ]);
  assert.equal(threshold.code, 2);
  assert.match(threshold.stderr, /--unknown-thresholds must lie from 0 to 1/);
});
