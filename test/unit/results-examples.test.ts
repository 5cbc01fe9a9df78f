/**
 * The results panel's per-sample numbers on a real evaluation of the demo model: example images
 * chosen among fooled samples (checked by running the undefended model, and the defended model
 * exported as one ONNX file, with onnxruntime on the stored inputs), per-class accuracy whose
 * weighted mean is the overall accuracy, and the adversarial confusion matrix.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { runEvaluation } from '../../src/core/eval/evaluate';
import { exportDefended } from '../../src/core/eval/export';
import { EXAMPLES_PER_RUN, EXAMPLES_PER_THREAT } from '../../src/core/eval/stages/attacks';
import { decodeBits } from '../../src/protocol/bitset';
import type { DefensePlan } from '../../src/protocol/experiment';
import type { ExampleImage, PerClassAccuracy, RunResult, WorstCase } from '../../src/protocol/run-result';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';

const POOL2 = '/features/features.5/MaxPool_output_0';
const LIMIT = 150;
const EPS = [0.03, 0.1];
const cacheDir = mkdtempSync(path.join(tmpdir(), 'rlab-examples-'));
const plan: DefensePlan = {
  kind: 'lesci',
  layer: POOL2,
  reference: DEMO_TRAIN_IMAGES,
  referenceLabels: DEMO_TRAIN_LABELS,
  referenceLimit: 1000,
  lesci: { mode: 'vq' },
  threats: ['transfer', 'bpda', 'gradient-free'],
};

/** argmax of each row of the first output of `session` on `x` ([n, 1, 28, 28]). */
async function predict(session: ort.InferenceSession, x: Float32Array, n: number): Promise<number[]> {
  const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [n, 1, 28, 28]) });
  const scores = out[session.outputNames[0]].data as Float32Array;
  const k = scores.length / n;
  return Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let j = 1; j < k; j++) if (scores[i * k + j] > scores[i * k + best]) best = j;
    return best;
  });
}

function checkPerClass(p: PerClassAccuracy, count: number, accuracy: number, worst: readonly WorstCase[], what: string) {
  assert.equal(
    p.count.reduce((a, b) => a + b, 0),
    count,
    `${what}: the class counts add up to the samples`,
  );
  // The count-weighted mean of the per-class accuracies is the overall accuracy.
  const weighted = (correct: number[]) => correct.reduce((s, c, i) => s + (p.count[i] ? (c / p.count[i]) * (p.count[i] / count) : 0), 0);
  assert.ok(Math.abs(weighted(p.cleanCorrect) - accuracy) < 1e-12, `${what}: clean ${weighted(p.cleanCorrect)} vs ${accuracy}`);
  assert.deepEqual(
    p.robust.map((r) => r.eps),
    EPS,
  );
  for (const r of p.robust) {
    const w = worst.find((x) => x.eps === r.eps)!;
    assert.ok(Math.abs(weighted(r.correct) - w.accuracy) < 1e-12, `${what} at eps ${r.eps}: ${weighted(r.correct)} vs worst case ${w.accuracy}`);
    r.correct.forEach((c, i) => assert.ok(c <= p.cleanCorrect[i], `${what}: class ${i} more robust than clean`));
  }
}

test('a real evaluation records fooled examples per threat model, per-class accuracy and the adversarial confusion matrix', async () => {
  const out = path.join(cacheDir, 'run.json');
  await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: LIMIT,
    batchSize: 50,
    threads: 1,
    ep: 'cpu',
    seed: 0,
    cacheDir,
    out,
    attacks: { names: ['fgsm', 'pgd', 'square'], eps: EPS, norm: 'linf', steps: 5, queries: 60 },
    defense: plan,
  });
  // What the panel reads: the file as written.
  const result = JSON.parse(readFileSync(out, 'utf8')) as RunResult;
  const data = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, LIMIT);
  const baseline = await ort.InferenceSession.create(readFileSync(DEMO_MODEL));
  const exported = path.join(cacheDir, 'defended.onnx');
  await exportDefended({ model: DEMO_MODEL, defense: plan, out: exported, seed: 0, threads: 1, batchSize: 100, cacheDir });
  const defended = await ort.InferenceSession.create(readFileSync(exported));
  try {
    const d = 28 * 28;
    const cleanBase = await predict(baseline, data.x, data.count);
    const cleanDef = await predict(defended, data.x, data.count);
    const examples = result.examples!;
    const largest = Math.max(...EPS);
    assert.ok(examples.every((e) => e.eps === largest));

    // Every stored example, on the model it attacked: the stored predictions are what onnxruntime gives.
    for (const [target, session, clean] of [
      ['baseline', baseline, cleanBase],
      ['defended', defended, cleanDef],
    ] as const) {
      const ex = examples.filter((e) => e.target === target);
      const adv = await predict(session, Float32Array.from(ex.flatMap((e) => e.adversarial)), ex.length);
      ex.forEach((e, r) => {
        const where = `${target} ${e.attack}/${e.threat} sample ${e.index}`;
        assert.equal(e.label, data.labels[e.index], where);
        assert.equal(e.cleanPrediction, clean[e.index], `${where}: clean prediction`);
        assert.equal(e.adversarialPrediction, adv[r], `${where}: prediction on the stored adversarial input`);
        assert.equal(e.fooled, e.cleanPrediction === e.label && adv[r] !== e.label, `${where}: fooled flag`);
        // The stored clean input is the sample's, and the adversarial one lies in the eps ball (rounding aside).
        for (let j = 0; j < d; j++) {
          assert.ok(Math.abs(e.clean[j] - data.x[e.index * d + j]) <= 5e-4 + 1e-7, `${where}: clean pixel ${j}`);
          assert.ok(Math.abs(e.adversarial[j] - e.clean[j]) <= largest + 1e-3, `${where}: pixel ${j} outside the ball`);
          assert.ok(e.adversarial[j] >= 0 && e.adversarial[j] <= 1);
        }
      });
    }

    // Baseline: EXAMPLES_PER_RUN per attack, all fooled (PGD and FGSM at 0.1 fool far more than four
    // of 150), chosen in sample order among the samples the attack fooled.
    const attacks = result.attacks!;
    for (const name of ['fgsm', 'pgd', 'square']) {
      const ex = examples.filter((e) => e.target === 'baseline' && e.attack === name);
      const entry = attacks.find((a) => a.target === 'baseline' && a.attack === name && a.eps === largest)!;
      const robust = decodeBits(entry.robust!, data.count);
      const fooledSet = [...robust.keys()].filter((i) => cleanBase[i] === data.labels[i] && !robust[i]);
      if (fooledSet.length < EXAMPLES_PER_RUN) continue;
      assert.equal(ex.length, EXAMPLES_PER_RUN, name);
      assert.ok(
        ex.every((e) => e.fooled && fooledSet.includes(e.index)),
        `${name}: examples ${ex.map((e) => e.index)} among the fooled ${fooledSet.slice(0, 10)}`,
      );
      assert.deepEqual(
        ex.map((e) => e.index),
        [...ex.map((e) => e.index)].sort((a, b) => a - b),
      );
    }
    assert.ok(examples.filter((e) => e.target === 'baseline' && e.attack === 'pgd').every((e) => e.fooled));

    // Defended: a few per threat model, from its strongest attack at the largest eps.
    const threats = [...new Set(attacks.filter((a) => a.target === 'defended').map((a) => a.threat))];
    assert.deepEqual(threats.sort(), ['bpda', 'gradient-free', 'transfer']);
    for (const threat of threats) {
      const ex = examples.filter((e) => e.target === 'defended' && e.threat === threat);
      assert.equal(ex.length, EXAMPLES_PER_THREAT, threat);
      const runs = attacks.filter((a) => a.target === 'defended' && a.threat === threat && a.eps === largest);
      const strongest = runs.reduce((w, a) => (a.accuracy < w.accuracy ? a : w));
      assert.ok(
        ex.every((e) => e.attack === strongest.attack),
        threat,
      );
      // Fooled ones first; unfooled ones only when the attack fooled too few.
      const flags = ex.map((e) => e.fooled);
      assert.deepEqual(
        flags,
        [...flags].sort((a, b) => Number(b) - Number(a)),
        `${threat}: fooled first`,
      );
    }
    assert.ok(
      examples.some((e: ExampleImage) => e.target === 'defended' && e.fooled),
      'the defense is fooled somewhere at eps 0.1',
    );

    // Per class: counts and clean hits agree with onnxruntime's predictions; weighted means are the overall numbers.
    const perClass = result.perClass!;
    const hits = new Array<number>(10).fill(0);
    data.labels.forEach((y, i) => (hits[y] += cleanBase[i] === y ? 1 : 0));
    assert.deepEqual(perClass.cleanCorrect, hits);
    checkPerClass(perClass, data.count, result.clean.accuracy, result.worstCase!, 'undefended');
    checkPerClass(result.defense!.perClass!, data.count, result.defense!.clean.accuracy, result.defense!.worstCase, 'defended');

    // The adversarial confusion matrix: rows are the class counts, the diagonal the worst case at the largest eps.
    for (const [m, p, worst, what] of [
      [result.adversarialConfusion!, perClass, result.worstCase!, 'undefended'],
      [result.defense!.adversarialConfusion!, result.defense!.perClass!, result.defense!.worstCase, 'defended'],
    ] as const) {
      assert.equal(m.eps, largest, what);
      assert.equal(m.method, 'per-sample-union-first-break');
      assert.deepEqual(
        m.matrix.map((row) => row.reduce((a, b) => a + b, 0)),
        p.count,
        what,
      );
      assert.deepEqual(
        m.matrix.map((row, i) => row[i]),
        p.robust.find((r) => r.eps === largest)!.correct,
        what,
      );
      const diag = m.matrix.reduce((s, row, i) => s + row[i], 0);
      assert.equal(diag / data.count, worst.find((w) => w.eps === largest)!.accuracy, what);
    }
  } finally {
    await baseline.release();
    await defended.release();
  }
});
