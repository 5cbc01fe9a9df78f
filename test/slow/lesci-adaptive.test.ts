/**
 * The adaptive threat model against LESCI vq, checked against an independent PyTorch
 * re-implementation (test/fixtures/lesci-adaptive-reference.json, written by
 * scripts/reference_lesci_adaptive.py): the same demo model, layer, 2000 reference and 200 test
 * images, exact PCA to 64 dims, and PGD L∞ (eps 0.05, 10 steps, random start, seed 0, early stop
 * judged on the real LESCI-vq model) on a soft nearest-neighbour surrogate with CE (b) and CW (c).
 * The tool's defended clean accuracy must match the reference's to 2 points, and its adaptive
 * attack must be at least as strong as the reference's best to 2 points (random starts and the
 * PCA solver differ, so per-sample outcomes are not compared exactly).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runEvaluation } from '../../src/core/eval/evaluate';
import { sha256Hex } from '../../src/core/model/load';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, ROOT } from '../helpers/cli';

interface Reference {
  modelSha256: string;
  layer: string;
  count: number;
  referenceLimit: number;
  embeddingRows: number;
  pcaDims: number;
  attack: { eps: number; steps: number; seed: number };
  cleanAccuracy: number;
  ce: { robustAccuracy: number; robust: number[] };
  cw: { robustAccuracy: number; robust: number[] };
  bestRobustAccuracy: number;
}

const ref = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'lesci-adaptive-reference.json'), 'utf8')) as Reference;
const TOLERANCE = 0.02;

test('LESCI vq adaptive threat: clean accuracy and adaptive robust accuracy match the PyTorch reference', async () => {
  assert.equal(sha256Hex(readFileSync(DEMO_MODEL)), ref.modelSha256, 'the fixture was made from another demo model: rerun scripts/reference_lesci_adaptive.py');
  const r = await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    batchSize: 100,
    threads: 0,
    ep: 'cpu',
    seed: ref.attack.seed,
    limit: ref.count,
    cacheDir: mkdtempSync(path.join(tmpdir(), 'rlab-lesci-adaptive-')),
    attacks: { names: ['pgd'], eps: [ref.attack.eps], norm: 'linf', steps: ref.attack.steps },
    defense: {
      kind: 'lesci',
      layer: ref.layer,
      reference: DEMO_TRAIN_IMAGES,
      referenceLabels: DEMO_TRAIN_LABELS,
      referenceLimit: ref.referenceLimit,
      threats: ['adaptive'],
      lesci: { mode: 'vq', pcaDims: ref.pcaDims },
    },
  });
  const d = r.defense!;
  // The same embedding space: the same correctly classified reference rows.
  assert.equal(d.params.embeddingRows, ref.embeddingRows);
  const clean = d.clean.accuracy;
  assert.ok(Math.abs(clean - ref.cleanAccuracy) <= TOLERANCE + 1e-9, `defended clean accuracy: tool ${clean}, reference ${ref.cleanAccuracy}`);
  const adaptive = r.attacks!.find((a) => a.target === 'defended' && a.threat === 'adaptive' && a.eps === ref.attack.eps);
  assert.ok(adaptive, 'the adaptive attack ran on the defended model');
  const best = Math.min(ref.ce.robustAccuracy, ref.cw.robustAccuracy);
  assert.ok(
    adaptive.accuracy <= best + TOLERANCE + 1e-9,
    `adaptive robust accuracy: tool ${adaptive.accuracy}, reference best ${best} (CE ${ref.ce.robustAccuracy}, CW ${ref.cw.robustAccuracy}): the tool's attack is weaker`,
  );
});
