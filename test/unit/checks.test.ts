// The checks that catch a failed evaluation: they fire on a model built to mask its gradient and on
// LESCI vq's direct threat, and stay quiet on the undefended demo model; the adaptive threat model
// breaks LESCI further than the transfer and BPDA attacks did.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runEvaluation } from '../../src/core/eval/evaluate';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { DataType, encodeModel } from '../../src/core/onnx/proto';
import type { CheckResult, RunResult } from '../../src/protocol/run-result';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';

const dir = mkdtempSync(path.join(tmpdir(), 'rlab-checks-'));
const fired = (r: RunResult, id: string, target: CheckResult['target'], threat?: string) =>
  (r.checks ?? []).some((c) => c.id === id && c.target === target && c.fired && (threat === undefined || c.threat === threat));

/**
 * A nearest-class-mean classifier on inputs quantised to quarters through an integer cast: the
 * quantisation is piecewise constant, so the input gradient is exactly zero everywhere.
 */
async function maskedModel(quantise: 'cast' | 'round' = 'cast'): Promise<string> {
  const { x, labels } = await demoImages(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, 2000);
  const d = 784,
    classes = 10;
  const means = new Float64Array(classes * d);
  const counts = new Float64Array(classes);
  for (let i = 0; i < labels.length; i++) {
    counts[labels[i]]++;
    for (let j = 0; j < d; j++) means[labels[i] * d + j] += x[i * d + j];
  }
  const w = new Float32Array(d * classes);
  const bias = new Float32Array(classes);
  for (let c = 0; c < classes; c++) {
    for (let j = 0; j < d; j++) {
      const m = means[c * d + j] / counts[c];
      w[j * classes + c] = m;
      bias[c] -= 0.5 * m * m;
    }
  }
  const b = new GraphBuilder();
  const flat = b.op('Flatten', ['x'], { axis: 1 });
  const scaled = b.op('Mul', [flat, b.scalar(4)]);
  const rounded = quantise === 'cast' ? b.op('Cast', [b.op('Cast', [scaled], { to: DataType.INT32 })], { to: DataType.FLOAT }) : b.op('Round', [scaled]);
  const q = b.op('Div', [rounded, b.scalar(4)]);
  b.node('Add', [b.op('MatMul', [q, b.floatConst('w', [d, classes], w)]), b.floatConst('b', [classes], bias)], {}, ['logits']);
  const file = path.join(dir, `masked-${quantise}.onnx`);
  writeFileSync(file, encodeModel(makeModel(b.graph('masked', [tensorValueInfo('x', ['N', 1, 28, 28])], [tensorValueInfo('logits', ['N', classes])]), 13)));
  return file;
}

const common = { data: DEMO_TEST_IMAGES, labels: DEMO_TEST_LABELS, batchSize: 100, threads: 0, ep: 'cpu' as const, seed: 0 };

test('a model that masks its gradient: the zero-gradient check fires, and Square beating PGD is flagged', async () => {
  const r = await runEvaluation({
    ...common,
    model: await maskedModel(),
    limit: 100,
    attacks: { names: ['pgd', 'square'], eps: [0.1], norm: 'linf', steps: 10, queries: 300 },
  });
  assert.ok(r.clean.accuracy > 0.5, `the masked classifier works clean (${r.clean.accuracy})`);
  const zero = r.checks!.find((c) => c.id === 'zero-gradient' && c.target === 'baseline')!;
  assert.equal(zero.fired, true);
  assert.equal(zero.value, 1);
  assert.ok(fired(r, 'weaker-whitebox', 'baseline'), JSON.stringify(r.checks));
});

test('a Round before the logits is piecewise constant: a zero gradient, and the check says so', async () => {
  const r = await runEvaluation({ ...common, model: await maskedModel('round'), limit: 50, attacks: { names: ['pgd'], eps: [0.1], norm: 'linf', steps: 5 } });
  const zero = r.checks!.find((c) => c.id === 'zero-gradient' && c.target === 'baseline')!;
  assert.equal(zero.fired, true);
  assert.equal(zero.value, 1);
});

test('an iterative attack still breaking samples in its last steps is flagged as not converged', async () => {
  // PGD with a step so small that it needs nearly all of its 20 steps to reach the ball's edge.
  const r = await runEvaluation({
    ...common,
    model: DEMO_MODEL,
    limit: 100,
    attacks: { names: ['pgd'], eps: [0.05], norm: 'linf', steps: 20, stepSize: 0.05 / 20, randomStart: false },
  });
  const entry = r.attacks![0];
  assert.ok(entry.convergence && entry.convergence.steps === 20 && entry.convergence.fromStep === 16);
  assert.ok(fired(r, 'not-converged', 'baseline'), JSON.stringify(entry.convergence));
});

test('the undefended demo model: no check fires', async () => {
  const r = await runEvaluation({ ...common, model: DEMO_MODEL, limit: 100, attacks: { names: ['fgsm', 'pgd'], eps: [0.02, 0.05], norm: 'linf', steps: 10 } });
  const ids = new Set(r.checks!.map((c) => c.id));
  for (const id of ['zero-gradient', 'unbounded', 'nondeterministic']) assert.ok(ids.has(id), `${id} ran`);
  assert.deepEqual(
    r.checks!.filter((c) => c.fired),
    [],
  );
});

test('LESCI vq: the direct gradient is masked (check fires), and the adaptive attack breaks it further than transfer and BPDA', async () => {
  const r = await runEvaluation({
    ...common,
    model: DEMO_MODEL,
    limit: 200,
    cacheDir: dir,
    attacks: { names: ['pgd'], eps: [0.05], norm: 'linf', steps: 10 },
    defense: {
      kind: 'lesci',
      layer: '/features/features.5/MaxPool_output_0',
      reference: DEMO_TRAIN_IMAGES,
      referenceLabels: DEMO_TRAIN_LABELS,
      referenceLimit: 2000,
      threats: ['transfer', 'bpda', 'direct', 'adaptive'],
      lesci: { mode: 'vq' },
    },
  });
  assert.ok(fired(r, 'zero-gradient', 'defended', 'direct'));
  assert.ok(!fired(r, 'unbounded', 'defended', 'adaptive'), 'the adaptive attack reaches about 0% when unbounded');
  const acc = (threat: string) => r.attacks!.find((a) => a.target === 'defended' && a.threat === threat)!.accuracy;
  assert.ok(acc('adaptive') < Math.min(acc('transfer'), acc('bpda')) - 0.05, `adaptive ${acc('adaptive')}, transfer ${acc('transfer')}, bpda ${acc('bpda')}`);
  const w = r.defense!.worstCase[0];
  assert.ok(w.accuracy <= acc('adaptive'));
  assert.ok(['holds', 'partial', 'broken', 'inconclusive'].includes(r.defense!.verdict));
  assert.ok(r.defense!.verdictReasons!.length > 0);
});
