/**
 * Open-set metrics on a tiny example worked out by hand, ties included (the dAE paper's open-set
 * recognition; src/core/analysis/open-set.ts), and the experiment file's `unknown` field.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fprAtTpr, openSetScorer, rocCurve } from '../../src/core/analysis/open-set';
import { rocAuc } from '../../src/core/analysis/stats';
import { experimentProblems, experimentToConfig } from '../../src/protocol/experiment-file';

// Known (positive) and unknown scores, with ties across the two sets (0.9 and 0.8).
const KNOWN = [0.9, 0.8, 0.8, 0.6];
const UNKNOWN = [0.8, 0.5, 0.9];

test('AUROC by hand: 0.9 beats 0.8 and 0.5 and ties 0.9 (2.5), each 0.8 ties 0.8 and beats 0.5 (1.5), 0.6 beats 0.5 (1): 6.5 / 12', () => {
  assert.ok(Math.abs(rocAuc(KNOWN, UNKNOWN) - 6.5 / 12) < 1e-12);
  assert.equal(rocAuc([1, 1], [1]), 0.5, 'all tied: chance');
  assert.equal(rocAuc([2, 3], [1]), 1);
  assert.equal(rocAuc([0], [1, 2]), 0);
});

test('FPR at 95% TPR by hand: ⌈0.95·4⌉ = 4 knowns must pass, so t = 0.6, and the unknowns 0.8 and 0.9 pass it: 2/3', () => {
  const r = fprAtTpr(KNOWN, UNKNOWN);
  assert.equal(r.threshold, 0.6);
  assert.ok(Math.abs(r.fpr - 2 / 3) < 1e-12);
  // Knowns 0.05, 0.10, …, 1: 0.95·20 = 19 must pass, so t is the 19th largest (0.10), not the 20th (0.05).
  const twenty = Array.from({ length: 20 }, (_, i) => (i + 1) / 20);
  assert.deepEqual(fprAtTpr(twenty, [0.07, 0.15, 0.25, 0.01]), { threshold: 2 / 20, fpr: 2 / 4 });
});

test('the ROC curve steps once per distinct score, and its trapezoid area is the AUROC', () => {
  const roc = rocCurve(KNOWN, UNKNOWN);
  assert.deepEqual(roc.fpr, [0, 1 / 3, 2 / 3, 2 / 3, 1]);
  assert.deepEqual(roc.tpr, [0, 1 / 4, 3 / 4, 1, 1]);
  let area = 0;
  for (let k = 1; k < roc.fpr.length; k++) area += ((roc.fpr[k] - roc.fpr[k - 1]) * (roc.tpr[k] + roc.tpr[k - 1])) / 2;
  assert.ok(Math.abs(area - 6.5 / 12) < 1e-12);
  const thinned = rocCurve(
    Array.from({ length: 1000 }, (_, i) => i),
    Array.from({ length: 1000 }, (_, i) => i + 0.5),
    11,
  );
  assert.equal(thinned.fpr.length, 11);
  assert.deepEqual([thinned.fpr[0], thinned.tpr[0], thinned.fpr[10], thinned.tpr[10]], [0, 0, 1, 1]);
});

test('per threshold by hand: rejected unknowns, rejected knowns and accuracy among the accepted knowns', () => {
  const correct = [1, 0, 1, 1];
  const s = openSetScorer('max-softmax', KNOWN, correct, UNKNOWN, [0, 0.7, 0.85, 0.95]);
  const rows = s.thresholds.map((r) => [r.threshold, r.unknownRejectionRate, r.knownRejectionRate, r.acceptedAccuracy, r.knownAccepted, r.unknownAccepted]);
  assert.deepEqual(rows, [
    [0, 0, 0, 3 / 4, 4, 3],
    [0.7, 1 / 3, 1 / 4, 2 / 3, 3, 2], // knowns 0.9, 0.8, 0.8 pass (correct, wrong, correct); unknowns 0.8, 0.9
    [0.85, 2 / 3, 3 / 4, 1, 1, 1],
    [0.95, 1, 1, null, 0, 0],
  ]);
});

test("experiment files: 'unknown' is checked and its paths made relative to the file", () => {
  const base = { model: 'm.onnx', data: 'd.npy' };
  assert.deepEqual(experimentProblems({ ...base, unknown: { data: 'noise.npy', limit: 10, thresholds: [0.5, 0.9] } }), []);
  assert.match(experimentProblems({ ...base, unknown: {} }).join(), /"unknown.data"/);
  assert.match(experimentProblems({ ...base, unknown: { data: 'x.npy', thresholds: [2] } }).join(), /"unknown.thresholds"/);
  assert.match(experimentProblems({ ...base, unknown: { data: 'x.npy', extra: 1 } }).join(), /"unknown.extra" is not a setting/);
  const config = experimentToConfig({ ...base, unknown: { data: 'sub/noise.npy' } }, '/work/exp/a.rlab.json');
  assert.equal(config.unknown?.data, '/work/exp/sub/noise.npy');
});
