// Per-class accuracy, the adversarial confusion matrix, the choice of example samples and the
// defense-parameter split, each against a hand computation on small per-sample outcomes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adversarialConfusion, perClassAccuracy, unionWorstCases } from '../../src/core/eval/worst-case';
import { exampleCandidates } from '../../src/core/eval/stages/attacks';
import { encodeBits } from '../../src/protocol/bitset';
import type { AttackResult, RunResult } from '../../src/protocol/run-result';
import { defenseView, splitDefenseParams, summaryRows } from '../../src/report/analysis';
import { renderHtml } from '../../src/report/html';
import { renderMarkdown } from '../../src/report/markdown';
import { adversarialConfusionMatrices, exampleGroups, perClassTable } from '../../src/report/samples';
import { sparkline, unicodeSparkline } from '../../src/report/sparkline';

function entry(attack: string, threat: string, eps: number, robust: number[]): AttackResult {
  return {
    target: 'defended',
    attack,
    threat,
    norm: 'linf',
    eps,
    accuracy: robust.reduce((a, b) => a + b, 0) / robust.length,
    successRate: 0,
    meanPerturbation: 0,
    maxPerturbation: 0,
    gradientEvaluations: 0,
    queries: 0,
    seconds: 0,
    params: {},
    robust: encodeBits(robust),
  };
}

// 8 samples of 3 classes. Sample 6 (class 2) is misclassified clean (predicted 0).
const labels = Int32Array.from([0, 0, 0, 1, 1, 2, 2, 2]);
const clean = Int32Array.from([0, 0, 0, 1, 1, 2, 0, 2]);
// At eps 0.1: A breaks samples 0 (→1) and 3 (→2); B breaks 3 (→0) and 5 (→1). At eps 0.05: A breaks 0 (→2).
const a01 = entry('pgd', 'transfer', 0.1, [0, 1, 1, 0, 1, 1, 0, 1]);
const b01 = entry('square', 'gradient-free', 0.1, [1, 1, 1, 0, 1, 0, 0, 1]);
const a005 = entry('pgd', 'transfer', 0.05, [0, 1, 1, 1, 1, 1, 0, 1]);
const predictions = new Map<AttackResult, Int32Array>([
  [a01, Int32Array.from([1, 0, 0, 2, 1, 2, 0, 2])],
  [b01, Int32Array.from([0, 0, 0, 0, 1, 1, 0, 2])],
  [a005, Int32Array.from([2, 0, 0, 1, 1, 2, 0, 2])],
]);

test('per-class accuracy: counts per class, robust only when every attack at that eps failed', () => {
  const p = perClassAccuracy([a005, a01, b01], labels, clean, 3);
  // Hand computation. Classes: 0 → samples 0,1,2; 1 → 3,4; 2 → 5,6,7.
  assert.deepEqual(p.count, [3, 2, 3]);
  assert.deepEqual(p.cleanCorrect, [3, 2, 2]); // sample 6 wrong clean
  // eps 0.05: sample 0 broken → class 0 keeps 1,2; class 1 keeps 3,4; class 2 keeps 5,7.
  // eps 0.1: union breaks 0, 3, 5 → class 0: 1,2; class 1: 4; class 2: 7.
  assert.deepEqual(p.robust, [
    { norm: 'linf', eps: 0.05, correct: [2, 2, 2] },
    { norm: 'linf', eps: 0.1, correct: [2, 1, 1] },
  ]);
  // The weighted mean of the per-class robust accuracies is the union worst case.
  const worst = unionWorstCases(
    [a005, a01, b01],
    Uint8Array.from(labels, (y, i) => (clean[i] === y ? 1 : 0)),
  );
  for (const w of worst) {
    const row = p.robust.find((r) => r.eps === w.eps)!;
    assert.equal(row.correct.reduce((s, c) => s + c, 0) / labels.length, w.accuracy);
  }
  // An entry without per-sample outcomes (an older file) leaves its eps out.
  const old = { ...a01, robust: undefined };
  assert.deepEqual(
    perClassAccuracy([old, b01], labels, clean, 3).robust.map((r) => r.eps),
    [],
  );
});

test('adversarial confusion: the first attack that fooled each sample, at the largest eps', () => {
  const m = adversarialConfusion([a005, a01, b01], predictions, labels, clean, 3)!;
  assert.equal(m.eps, 0.1);
  assert.equal(m.method, 'per-sample-union-first-break');
  // Hand computation at eps 0.1, A ran before B:
  // s0 (0): A → 1. s1, s2 (0): robust → 0. s3 (1): A first → 2. s4 (1): robust → 1.
  // s5 (2): B → 1. s6 (2): clean prediction 0. s7 (2): robust → 2.
  assert.deepEqual(m.matrix, [
    [2, 1, 0],
    [0, 1, 1],
    [1, 1, 1],
  ]);
  // The diagonal over the count is the union worst case at that eps (samples 1, 2, 4, 7: 4/8).
  const diag = m.matrix.reduce((s, row, i) => s + row[i], 0);
  assert.equal(diag / labels.length, 4 / 8);
  const union = unionWorstCases(
    [a005, a01, b01],
    Uint8Array.from(labels, (y, i) => (clean[i] === y ? 1 : 0)),
  );
  assert.equal(union.find((w) => w.eps === 0.1)!.accuracy, 4 / 8);
  // Predictions missing for an entry: no matrix rather than a wrong one.
  assert.equal(adversarialConfusion([a01, b01], new Map([[a01, predictions.get(a01)!]]), labels, clean, 3), undefined);
  assert.equal(adversarialConfusion([], predictions, labels, clean, 3), undefined);
});

test('a sequential plan: a sample skipped by a later attack is credited to the one that broke it', () => {
  // B ran after A on the samples A left: its prediction for sample 0 is the clean one, its robust bit 0.
  const a = entry('apgd-ce', 'whitebox', 0.1, [0, 1]);
  const b = entry('apgd-dlr', 'whitebox', 0.1, [0, 0]);
  const preds = new Map([
    [a, Int32Array.from([1, 0])],
    [b, Int32Array.from([0, 1])],
  ]);
  const m = adversarialConfusion([a, b], preds, Int32Array.from([0, 0]), Int32Array.from([0, 0]), 2)!;
  assert.deepEqual(m.matrix, [
    [0, 2],
    [0, 0],
  ]);
});

test('example candidates: the fooled samples first, in sample order; unfooled ones only to fill up', () => {
  // Sample 6 is wrong clean: never "fooled", whatever the attack predicts.
  const adv = Int32Array.from([1, 0, 0, 2, 1, 1, 1, 2]);
  assert.deepEqual(exampleCandidates(labels, clean, adv, 8), { fooled: [0, 3, 5], others: [1, 2, 4, 6, 7] });
  // Only the first `pool` samples are candidates (the adversarial inputs kept).
  assert.deepEqual(exampleCandidates(labels, clean, adv, 4), { fooled: [0, 3], others: [1, 2] });
});

function result(): RunResult {
  return {
    schemaVersion: 2,
    tool: { name: 'robustness-lab', version: 'test' },
    createdAt: '2026-01-01T00:00:00Z',
    model: { path: 'm.onnx', sha256: 'x', input: 'x', output: 'y', inputShape: [1, 1, 2, 2], opset: 17 },
    dataset: {
      format: 'npy',
      path: 'd.npy',
      count: 8,
      sha256: 'y',
      sampleShape: [1, 2, 2],
      preprocessing: { scale: 1, layout: 'NCHW' },
      classNames: ['a', 'b', 'c'],
    },
    seed: 0,
    runtime: { executionProvider: 'cpu', requested: 'cpu', threads: 1, batchSize: 8 },
    timings: { loadSeconds: 0, cleanSeconds: 0, totalSeconds: 0, cleanImagesPerSecond: 0 },
    clean: {
      accuracy: 7 / 8,
      correct: 7,
      count: 8,
      confusion: [
        [3, 0, 0],
        [0, 2, 0],
        [1, 0, 2],
      ],
    },
    perClass: perClassAccuracy([a005, a01, b01], labels, clean, 3),
    adversarialConfusion: adversarialConfusion([a005, a01, b01], predictions, labels, clean, 3),
    examples: [
      {
        index: 0,
        label: 0,
        cleanPrediction: 0,
        attack: 'pgd',
        eps: 0.1,
        threat: 'whitebox',
        target: 'baseline',
        adversarialPrediction: 1,
        fooled: true,
        shape: [1, 2, 2],
        clean: [0, 0, 1, 1],
        adversarial: [0.1, 0, 0.9, 1],
      },
      {
        index: 3,
        label: 1,
        cleanPrediction: 1,
        attack: 'square',
        eps: 0.1,
        threat: 'bpda',
        target: 'defended',
        adversarialPrediction: 1,
        fooled: false,
        shape: [1, 2, 2],
        clean: [0, 0, 1, 1],
        adversarial: [0, 0, 1, 1],
      },
      // An older example without the field: worked out from the predictions.
      {
        index: 5,
        label: 2,
        cleanPrediction: 2,
        attack: 'square',
        eps: 0.1,
        threat: 'bpda',
        target: 'defended',
        adversarialPrediction: 0,
        shape: [1, 2, 2],
        clean: [0, 0, 1, 1],
        adversarial: [0, 0, 1, 1],
      },
    ],
    defense: {
      kind: 'dae',
      layer: 'T',
      placement: 'after-tail',
      scores: 'probabilities',
      params: { hidden: 16, sigma: 0.25, epochs: 4, alpha: 3, beta: 1, seed: 0, lossHistory: [0.9, 0.5, 0.3, 0.25], reference: { gamma: { median: 0.1 } } },
      reference: { path: 'r', count: 8, sha256: 'z' },
      fitSeconds: 1,
      cached: false,
      clean: {
        accuracy: 0.75,
        baselineAccuracy: 7 / 8,
        confusion: [
          [3, 0, 0],
          [0, 1, 1],
          [1, 0, 2],
        ],
      },
      threats: { bpda: 'identity through the defense' },
      worstCase: [],
      verdict: 'inconclusive',
    },
  };
}

test('the per-class table: clean and robust per class, the last row the overall accuracy', () => {
  const t = perClassTable(result())!;
  assert.deepEqual(t.columns, ['class', 'samples', 'clean', 'ε=0.05', 'ε=0.1', 'defended clean']);
  assert.deepEqual(t.rows[0], ['0 a', '3', '100.0%', '66.7%', '66.7%', '100.0%']);
  assert.deepEqual(t.rows[2], ['2 c', '3', '66.7%', '66.7%', '33.3%', '66.7%']);
  // The defended model has no per-class record here: its clean column comes from its confusion matrix.
  assert.equal(t.rows[1][5], '50.0%');
  assert.deepEqual(t.rows[3], ['all', '8', '87.5%', '75.0%', '50.0%', '75.0%']);
  // An older file (no per-class record, no defense): the clean accuracy per class from the confusion matrix.
  const old = { ...result(), perClass: undefined, defense: undefined };
  const t2 = perClassTable(old)!;
  assert.deepEqual(t2.columns, ['class', 'samples', 'clean']);
  assert.deepEqual(
    t2.rows.map((r) => r[2]),
    ['100.0%', '100.0%', '66.7%', '87.5%'],
  );
});

test('adversarial confusion matrices and example groups in the report', () => {
  const [m] = adversarialConfusionMatrices(result());
  assert.match(m.title, /no defense, L∞ eps 0\.1, worst case per sample/);
  assert.deepEqual(m.labels, ['a', 'b', 'c']);
  const groups = exampleGroups(result());
  assert.deepEqual(
    groups.map((g) => [g.title, g.examples.map((e) => [e.index, e.fooled])]),
    [
      ['No defense (whitebox)', [[0, true]]],
      [
        'With the defense: bpda',
        [
          [3, false],
          [5, true],
        ],
      ],
    ],
  );
  assert.equal(groups[1].note, 'gradient: identity through the defense');
});

test('defense parameters: the wizard’s and the verdict’s first, series apart, the rest collapsed', () => {
  const d = defenseView(result())!;
  assert.deepEqual(
    d.mainParams.map(([k]) => k),
    ['hidden', 'sigma', 'epochs', 'alpha'],
  );
  assert.deepEqual(d.series, [{ key: 'lossHistory', values: [0.9, 0.5, 0.3, 0.25] }]);
  assert.deepEqual(
    d.otherParams.map(([k]) => k),
    ['beta', 'seed', 'reference.gamma.median'],
  );
  assert.match(d.placementText!, /acts on the network's output/);
  // LESCI in vq mode: k and tProjection only apply to vote.
  const lesci = splitDefenseParams('lesci', { mode: 'vq', k: 10, tProjection: 0.5, pcaDims: 64, reject: false, embeddingRows: 3000 });
  assert.deepEqual(
    lesci.mainParams.map(([k]) => k),
    ['mode', 'pcaDims'],
  );
  assert.deepEqual(
    splitDefenseParams('lesci', { mode: 'vote', k: 10, tProjection: 0.5, pcaDims: 64, reject: false }).mainParams.map(([k]) => k),
    ['mode', 'k', 'tProjection', 'pcaDims', 'reject'],
  );
  // The summary lists the main parameters only.
  assert.equal(summaryRows(result()).find(([k]) => k === 'defense parameters')![1], 'hidden=16, sigma=0.25, epochs=4, alpha=3');
});

test('sparklines: the polyline spans the box, the lowest value at the bottom', () => {
  const s = sparkline([4, 2, 0], 10, 6, 1)!;
  assert.equal(s.points, '1,1 5,3 9,5');
  assert.equal(unicodeSparkline([4, 2, 0]), '█▅▁');
  assert.equal(sparkline([1]), undefined);
});

test('the exports show the per-class table, the adversarial confusion matrix and the parameter split', () => {
  const { markdown } = renderMarkdown([{ name: 'run', result: result() }]);
  assert.match(markdown, /### Accuracy per class/);
  assert.match(markdown, /\| all \| 8 \| 87\.5% \| 75\.0% \| 50\.0% \| 75\.0% \|/);
  assert.match(markdown, /### Adversarial confusion matrix \(no defense/);
  assert.match(markdown, /`lossHistory` █▄▂▁ 4 values: 0\.9 → 0\.25/);
  assert.match(markdown, /Other recorded parameters:/);
  assert.match(markdown, /acts on the network's output/);
  const html = renderHtml([{ name: 'run', result: result() }]);
  assert.match(html, /<details><summary>Other recorded parameters \(3\)<\/summary>/);
  assert.match(html, /<polyline fill="none"/);
  assert.match(html, /Adversarial confusion matrix \(no defense/);
  assert.match(html, /<h4>With the defense: bpda/);
});
