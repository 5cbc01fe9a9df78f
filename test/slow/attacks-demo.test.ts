/**
 * Attacks on the demo model through generated ONNX gradients, against PyTorch on the same weights
 * and images (test/fixtures/attack-reference.json, written by scripts/reference_attacks.py).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runEvaluation } from '../../src/core/eval/evaluate';
import { openClassifier, onnxClassifier } from '../../src/core/eval/model-session';
import { ATTACK_NAMES, bim } from '../../src/core/attacks';
import { demoImages, relativeL2 } from '../helpers/demo-data';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, ROOT } from '../helpers/cli';

interface Curve {
  eps: number;
  accuracy: number;
  predictions: number[];
}
const ref = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'attack-reference.json'), 'utf8')) as {
  fgsm_linf: Curve[];
  bim_linf: Curve[];
  fgsm_l2: Curve[];
  gradLabels: number[];
  ceSumGradFirst4: number[];
  cwGradFirst4: number[];
};
const labels = (JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'demo-reference.json'), 'utf8')) as { subset: { labels: number[] } }).subset.labels;

/** PyTorch's accuracy on the first n images, from its per-sample predictions. */
function refAccuracy(curve: Curve, n: number): number {
  let correct = 0;
  for (let i = 0; i < n; i++) if (curve.predictions[i] === labels[i]) correct++;
  return correct / n;
}

test('input gradients of cross-entropy and CW margin equal PyTorch autograd on the demo model', async () => {
  const m = await openClassifier(DEMO_MODEL, { ep: 'cpu', threads: 1 });
  const c = onnxClassifier(m, { ep: 'cpu', threads: 1 });
  try {
    const { x } = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 4);
    const labels = Int32Array.from(ref.gradLabels);
    const ce = await c.lossGradient(x, 4, labels, 'ce-sum');
    assert.ok(relativeL2(ce.grad, ref.ceSumGradFirst4) < 1e-4, `CE gradient relative error ${relativeL2(ce.grad, ref.ceSumGradFirst4)}`);
    const cw = await c.lossGradient(x, 4, labels, 'cw');
    assert.ok(relativeL2(cw.grad, ref.cwGradFirst4) < 1e-4, `CW gradient relative error ${relativeL2(cw.grad, ref.cwGradFirst4)}`);
  } finally {
    await m.session.release();
  }
});

test('FGSM (L∞ and L2) and BIM robust accuracy equal a PyTorch run on the same weights within 0.5 points', async () => {
  const n = 1000;
  const linf = await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: n,
    batchSize: 100,
    threads: 2,
    ep: 'cpu',
    seed: 0,
    attacks: { names: ['fgsm'], eps: ref.fgsm_linf.map((c) => c.eps), norm: 'linf' },
  });
  for (const [i, curve] of ref.fgsm_linf.entries()) {
    const ours = linf.attacks![i];
    assert.equal(ours.eps, curve.eps);
    assert.ok(Math.abs(ours.accuracy - refAccuracy(curve, n)) <= 0.005, `FGSM eps ${curve.eps}: ${ours.accuracy} vs PyTorch ${refAccuracy(curve, n)}`);
  }
  const l2 = await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: n,
    batchSize: 100,
    threads: 2,
    ep: 'cpu',
    seed: 0,
    attacks: { names: ['fgsm'], eps: ref.fgsm_l2.map((c) => c.eps), norm: 'l2' },
  });
  for (const [i, curve] of ref.fgsm_l2.entries()) {
    assert.ok(
      Math.abs(l2.attacks![i].accuracy - refAccuracy(curve, n)) <= 0.005,
      `FGSM L2 eps ${curve.eps}: ${l2.attacks![i].accuracy} vs PyTorch ${refAccuracy(curve, n)}`,
    );
  }
  // BIM: 10 steps of eps/4 (PyTorch's settings), on the first 300 images to keep the suite quick.
  const bimEps = [ref.bim_linf[1], ref.bim_linf[3]];
  const bim = await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: 300,
    batchSize: 100,
    threads: 2,
    ep: 'cpu',
    seed: 0,
    attacks: { names: ['bim'], eps: bimEps.map((c) => c.eps), norm: 'linf', steps: 10 },
  });
  bimEps.forEach((curve, i) => {
    assert.ok(
      Math.abs(bim.attacks![i].accuracy - refAccuracy(curve, 300)) <= 0.005,
      `BIM eps ${curve.eps}: ${bim.attacks![i].accuracy} vs PyTorch ${refAccuracy(curve, 300)}`,
    );
  });
});

test('the fused L∞ step equals x + α·sign(gradient) clipped to the ball and the range, and BIM through it matches BIM through the JavaScript step', async () => {
  const m = await openClassifier(DEMO_MODEL, { ep: 'cpu', threads: 2 });
  const c = onnxClassifier(m, { ep: 'cpu', threads: 2 });
  try {
    const n = 50;
    const { x, labels } = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, n);
    // An iterate inside the ball (some coordinates at its edge) to step from; range [0.05, 0.9] so both clips bind.
    const eps = 0.03;
    const xt = x.map((v, i) => Math.min(0.9, Math.max(0.05, v + eps * Math.sin(i))));
    for (const alpha of [0.01, -0.01]) {
      const { next, logits } = await c.linfStep!(xt, x, n, labels, 'ce-sum', { alpha, eps, range: [0.05, 0.9] });
      const { grad, logits: ref } = await c.lossGradient(xt, n, labels, 'ce-sum');
      assert.deepEqual(Array.from(logits), Array.from(ref), 'logits at x_t');
      let worst = 0;
      for (let i = 0; i < xt.length; i++) {
        const stepped = xt[i] + alpha * Math.sign(grad[i]);
        const expected = Math.min(0.9, Math.max(0.05, Math.min(x[i] + eps, Math.max(x[i] - eps, stepped))));
        worst = Math.max(worst, Math.abs(next[i] - expected));
      }
      assert.ok(worst < 1e-6, `alpha ${alpha}: fused step differs from the formula by ${worst}`);
    }
    // The same BIM with and without the fused step (a classifier view without linfStep takes the JavaScript path).
    const jsOnly = { numClasses: c.numClasses, sampleDims: c.sampleDims, logits: c.logits.bind(c), lossGradient: c.lossGradient.bind(c) };
    const options = { norm: 'linf' as const, eps: 0.05, steps: 10 };
    const fused = await bim(c, x, labels, options);
    const js = await bim(jsOnly, x, labels, options);
    // Float32 in the graph against one rounding from float64 in JavaScript: a last-bit difference may
    // flip a later sign, so allow one sample of 50 to end differently; the rest stop at the same step.
    const same = Array.from(fused.fooled, (f, i) => f === js.fooled[i] && fused.gradientEvaluations[i] === js.gradientEvaluations[i]);
    assert.ok(same.filter(Boolean).length >= n - 1, `BIM with and without the fused step agree on ${same.filter(Boolean).length}/${n} samples`);
  } finally {
    await c.release();
    await m.session.release();
  }
});

test('CLI: evaluate --attack prints the attack table and adds an attacks array to the result', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-attack-'));
  const out = path.join(dir, 'r.json');
  const r = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--limit',
    '100',
    '--threads',
    '1',
    '--attack',
    'fgsm,pgd,square',
    '--eps',
    '0.05',
    '--steps',
    '5',
    '--queries',
    '50',
    '--seed',
    '3',
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /robust accuracy/);
  const result = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(
    result.attacks.map((a: { attack: string }) => a.attack),
    ['fgsm', 'pgd', 'square'],
  );
  for (const a of result.attacks) {
    assert.equal(a.threat, 'whitebox');
    assert.ok(a.accuracy >= 0 && a.accuracy <= result.clean.accuracy, `${a.attack}: ${a.accuracy}`);
    assert.ok(a.maxPerturbation <= 0.05 + 1e-6);
  }
  const square = result.attacks[2];
  assert.equal(square.gradientEvaluations, 0);
  assert.ok(square.queries > 0 && square.queries <= 50 * 100);
  // Seeded: the same run gives the same numbers.
  const again = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--limit',
    '100',
    '--threads',
    '1',
    '--attack',
    'fgsm,pgd,square',
    '--eps',
    '0.05',
    '--steps',
    '5',
    '--queries',
    '50',
    '--seed',
    '3',
    '--json',
  ]);
  const second = JSON.parse(again.stdout);
  assert.deepEqual(
    second.attacks.map((a: { accuracy: number }) => a.accuracy),
    result.attacks.map((a: { accuracy: number }) => a.accuracy),
  );

  const bad = cli(['evaluate', '--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--labels', DEMO_TEST_LABELS, '--attack', 'fgsm,deepfool', '--eps', '0.1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown attack 'deepfool'/);
  assert.match(bad.stderr, new RegExp(ATTACK_NAMES.join(', ')));
  const noEps = cli(['evaluate', '--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--labels', DEMO_TEST_LABELS, '--attack', 'fgsm']);
  assert.equal(noEps.code, 2);
  assert.match(noEps.stderr, /--eps/);
});
