/**
 * Defenses end to end on the demo: fit with the cache, export as one ONNX model, evaluate under
 * the threat models. The single-model composition is checked against an independent composition
 * by separate head / defense / tail sessions, and the BPDA and direct gradients against finite
 * differences of what they claim to differentiate.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CutRunner } from '../../src/core/defenses/activations';
import { DefendedClassifier, threatClassifier } from '../../src/core/defenses/threats';
import { fitDefense } from '../../src/core/defenses/fit';
import { argmaxRows, openClassifier } from '../../src/core/eval/model-session';
import { decodeBits } from '../../src/protocol/bitset';
import { prepareData, runEvaluation } from '../../src/core/eval/evaluate';
import { exportDefended } from '../../src/core/eval/export';
import { decodeModel } from '../../src/core/onnx/proto';
import { cutModel } from '../../src/core/onnx/cut';
import { encodeModel } from '../../src/core/onnx/proto';
import { OnnxClassifier } from '../../src/core/runtime/onnx-classifier';
import { validateRunResult } from '../../src/protocol/run-result';
import type { DefensePlan } from '../../src/protocol/experiment';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';

const POOL2 = '/features/features.5/MaxPool_output_0';
const FC1 = '/classifier/classifier.2/Relu_output_0';
const cacheDir = mkdtempSync(path.join(tmpdir(), 'rlab-defense-cache-'));
const reference = { reference: DEMO_TRAIN_IMAGES, referenceLabels: DEMO_TRAIN_LABELS, referenceLimit: 1500 };

const plans: Record<string, DefensePlan> = {
  'LESCI vq': { kind: 'lesci', layer: POOL2, ...reference, lesci: { mode: 'vq' } },
  'LESCI vote with rejection': { kind: 'lesci', layer: POOL2, ...reference, lesci: { mode: 'vote', reject: true } },
  'retrieval (tail head)': { kind: 'retrieval', layer: FC1, ...reference, retrieval: { head: 'tail', neighbours: 5 } },
  'dAE at the input': { kind: 'dae', layer: 'input', ...reference, referenceLimit: 600, dae: { hidden: 32, epochs: 2 } },
};

async function demo(limit: number) {
  const model = await openClassifier(DEMO_MODEL, { ep: 'cpu', threads: 1 });
  const data = await prepareData({ data: DEMO_TEST_IMAGES, labels: DEMO_TEST_LABELS, limit }, model);
  return { model, data };
}

for (const [name, plan] of Object.entries(plans)) {
  test(`${name}: the exported single ONNX model gives the same outputs as head, defense and tail run as separate sessions`, async () => {
    const out = path.join(cacheDir, `${plan.kind}-${(plan.lesci as { mode?: string } | undefined)?.mode ?? ''}.onnx`);
    const exported = await exportDefended({ model: DEMO_MODEL, defense: plan, out, seed: 0, threads: 1, batchSize: 100, cacheDir });
    const { model, data } = await demo(300);
    const runner = await CutRunner.create(model, plan.layer, { threads: 1 });
    try {
      const reference = await runner.runStage(exported.fit.stage, await runner.activations(data.x, data.count), data.count);
      const session = await ort.InferenceSession.create(readFileSync(out));
      const scores = session.outputNames[0];
      const ran = await session.run({ input: new ort.Tensor('float32', data.x, [data.count, 1, 28, 28]) });
      await session.release();
      const ours = ran[scores].data as Float32Array;
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - reference.scores[i]) / Math.max(1, Math.abs(reference.scores[i])));
      assert.ok(worst < 1e-4, `${name}: scores differ by ${worst}`);
      assert.deepEqual(Array.from(argmaxRows(ours, 10)), Array.from(argmaxRows(reference.scores, 10)));
      if (reference.accepted)
        assert.deepEqual(Array.from(ran['defense_accepted'].data as unknown as ArrayLike<boolean>, Number), Array.from(reference.accepted));
      const meta = decodeModel(readFileSync(out)).metadataProps!.find((p) => p.key === 'robustness_lab.defense')!;
      assert.equal(JSON.parse(meta.value!).kind, plan.kind);
    } finally {
      await runner.release();
      await model.session.release();
    }
  });
}

test('fits are cached by model, data and parameters, written atomically, and reused', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-cache-'));
  const { model, data } = await demo(10);
  const ref = await prepareData({ data: DEMO_TRAIN_IMAGES, labels: DEMO_TRAIN_LABELS, limit: 500 }, model);
  const ctx = {
    loaded: model.loaded,
    graph: model.graph,
    reference: { x: ref.x, labels: ref.labels, count: ref.count, sha256: ref.description.sha256 },
    seed: 0,
    cacheDir: dir,
    threads: 1,
    batchSize: 100,
    log: () => {},
  };
  const plan: DefensePlan = { kind: 'lesci', layer: POOL2, reference: DEMO_TRAIN_IMAGES, lesci: { mode: 'vote', k: 5 } };
  const first = await fitDefense(plan, ctx);
  const second = await fitDefense(plan, ctx);
  assert.equal(first.cached, false);
  assert.equal(second.cached, true);
  assert.deepEqual(encodeModel(second.stage.model), encodeModel(first.stage.model));
  const other = await fitDefense({ ...plan, lesci: { mode: 'vote', k: 7 } }, ctx);
  assert.equal(other.cached, false, 'other parameters, other entry');
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.json')).length, 2);
  assert.ok(
    readdirSync(dir).every((f) => !f.endsWith('.tmp')),
    'no temporary files left',
  );
  await assert.rejects(fitDefense({ ...plan, layer: 'no_such_tensor' }, ctx), /no tensor named 'no_such_tensor'[\s\S]*insertion points/);
  void data;
  await model.session.release();
});

/** The demo model with one of the plans fitted (from the shared cache), undefended and defended. */
async function defendedDemo(planName: string, limit: number) {
  const { model, data } = await demo(limit);
  const plan = plans[planName];
  const ref = await prepareData({ data: DEMO_TRAIN_IMAGES, labels: DEMO_TRAIN_LABELS, limit: plan.referenceLimit }, model);
  const fit = await fitDefense(plan, {
    loaded: model.loaded,
    graph: model.graph,
    reference: { x: ref.x, labels: ref.labels, count: ref.count, sha256: ref.description.sha256 },
    seed: 0,
    cacheDir,
    threads: 1,
    batchSize: 100,
    log: () => {},
  });
  const sessionOptions = { ep: 'cpu' as const, threads: 1 };
  const undefended = new OnnxClassifier({
    model: model.loaded.model,
    shapes: model.graph.shapes,
    session: model.session,
    input: 'input',
    output: 'logits',
    sampleDims: [1, 28, 28],
    numClasses: 10,
    sessionOptions,
  });
  const defended = new DefendedClassifier({
    model: model.loaded.model,
    shapes: model.graph.shapes,
    input: 'input',
    output: 'logits',
    sampleDims: [1, 28, 28],
    numClasses: 10,
    stage: fit.stage,
    sessionOptions,
    undefended,
  });
  return { model, data, undefended, defended };
}

/** The 8 largest coordinates of `grad` agree with central differences of `loss` at x (5% + 1e-3). */
async function agreesWithFiniteDifferences(grad: Float32Array, x: Float32Array, loss: (v: Float32Array) => Promise<number>, what: string): Promise<void> {
  const step = 1e-3;
  const order = Array.from(grad.keys())
    .sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a]))
    .slice(0, 8);
  for (const i of order) {
    const plus = x.slice(),
      minus = x.slice();
    plus[i] += step;
    minus[i] -= step;
    const fd = ((await loss(plus)) - (await loss(minus))) / (2 * step);
    assert.ok(Math.abs(fd - grad[i]) <= 0.05 * Math.abs(grad[i]) + 1e-3, `coordinate ${i}: ${what} ${grad[i]} vs finite differences ${fd}`);
  }
}

/** Cross-entropy of one sample's logits, in float64. */
function crossEntropy(logits: ArrayLike<number>, label: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return Math.log(sum) + max - logits[label];
}

test('BPDA through LESCI vq is the gradient of L(tail(head(x) + c)) with c = E* − head(x0) held fixed (finite differences)', async () => {
  const { model, data, defended } = await defendedDemo('LESCI vq', 2);
  const bpda = threatClassifier(defended, 'bpda');
  const direct = threatClassifier(defended, 'direct');
  const x = data.x.slice(0, 784);
  const label = new Int32Array([data.labels[0]]);
  const grad = (await bpda.lossGradient!(x, 1, label, 'ce-sum')).grad;
  // Independent: head and tail sessions, the projection offset c frozen at x0.
  const { head, tail } = cutModel(model.loaded.model, POOL2, model.graph.shapes);
  const h = await ort.InferenceSession.create(encodeModel(head));
  const t = await ort.InferenceSession.create(encodeModel(tail));
  const act = async (v: Float32Array) => (await h.run({ input: new ort.Tensor('float32', v, [1, 1, 28, 28]) }))[h.outputNames[0]].data as Float32Array;
  const projected = (await defended.run(x, 1, ['defense_activation_out']))['defense_activation_out'].data as Float32Array;
  const h0 = await act(x);
  const c = projected.map((v, i) => v - h0[i]);
  const loss = async (v: Float32Array) => {
    const a = (await act(v)).map((u, i) => u + c[i]);
    return crossEntropy((await t.run({ [POOL2]: new ort.Tensor('float32', a, [1, 64, 4, 4]) }))[t.outputNames[0]].data as Float32Array, label[0]);
  };
  await agreesWithFiniteDifferences(grad, x, loss, 'BPDA');
  // Through the argmin the true gradient is zero.
  assert.ok((await direct.lossGradient!(x, 1, label, 'ce-sum')).grad.every((g) => g === 0));
  for (const s of [h, t]) await s.release();
  for (const s of [bpda, direct]) await s.release();
  await defended.release();
  await model.session.release();
});

test('the direct gradient of the retrieval defense goes through the attention weights (finite differences of the defended model)', async () => {
  const { model, data, undefended, defended } = await defendedDemo('retrieval (tail head)', 1);
  const direct = threatClassifier(defended, 'direct');
  const x = data.x.slice(0, 784);
  const label = new Int32Array([data.labels[0]]);
  const grad = (await direct.lossGradient!(x, 1, label, 'ce-sum')).grad;
  const transferGrad = (await undefended.lossGradient(x, 1, label, 'ce-sum')).grad;
  assert.ok(
    grad.some((g, i) => Math.abs(g - transferGrad[i]) > 1e-4),
    'the defended gradient differs from the undefended one',
  );
  const loss = async (v: Float32Array) => crossEntropy(await defended.logits(v, 1), label[0]);
  await agreesWithFiniteDifferences(grad, x, loss, 'direct');
  await direct.release();
  await defended.release();
  await model.session.release();
});

test('evaluate with a defense: defended clean accuracy, every threat model, worst case and verdict in the result', async () => {
  const out = path.join(cacheDir, 'run.json');
  const result = await runEvaluation({
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: 200,
    batchSize: 100,
    threads: 1,
    ep: 'cpu',
    seed: 0,
    cacheDir,
    out,
    attacks: { names: ['fgsm', 'square'], eps: [0.03, 0.1], norm: 'linf', queries: 40 },
    defense: plans['LESCI vote with rejection'],
  });
  assert.deepEqual(validateRunResult(JSON.parse(readFileSync(out, 'utf8'))), []);
  const d = result.defense!;
  assert.equal(d.kind, 'lesci');
  assert.ok(d.clean.projectionRate! > 0.5 && d.clean.projectionRate! <= 1);
  assert.ok(Math.abs(d.clean.rejectionRate! - (1 - d.clean.projectionRate!)) < 1e-9, 'reject mode rejects exactly the unprojected inputs');
  const threats = new Set(result.attacks!.filter((a) => a.target === 'defended').map((a) => a.threat));
  // The vote mode adds the soft-vote and bypass variants to the adaptive threat model.
  assert.deepEqual([...threats].sort(), ['adaptive', 'adaptive/soft-vote', 'adaptive/vote-bypass', 'bpda', 'direct', 'gradient-free', 'transfer']);
  assert.equal(
    result.attacks!.filter((a) => a.target === 'baseline').every((a) => a.threat === 'whitebox'),
    true,
  );
  for (const w of d.worstCase) {
    const runs = result.attacks!.filter((a) => a.target === 'defended' && a.eps === w.eps);
    // Each entry's per-sample outcomes agree with its aggregate robust accuracy.
    const bits = runs.map((a) => decodeBits(a.robust!, result.clean.count));
    runs.forEach((a, r) => assert.equal(bits[r].reduce((x, y) => x + y, 0) / result.clean.count, a.accuracy, `${a.attack}/${a.threat}`));
    // The worst case is the per-sample union: robust only where every attack and threat failed.
    const survivors = bits[0].filter((_, i) => bits.every((b) => b[i] === 1)).length;
    assert.equal(w.method, 'per-sample-union');
    assert.equal(w.accuracy, survivors / result.clean.count);
    assert.ok(w.accuracy <= Math.min(...runs.map((a) => a.accuracy)));
    assert.equal(w.singleAccuracy, Math.min(...runs.map((a) => a.accuracy)));
    assert.ok(runs.some((a) => a.attack === w.attack && a.threat === w.threat && a.accuracy === w.singleAccuracy));
  }
  assert.ok(['holds', 'partial', 'broken', 'inconclusive'].includes(d.verdict));
  assert.ok(d.verdictReasons!.length > 0);
  for (const a of result.attacks!.filter((e) => e.target === 'defended')) assert.ok(a.rejection && a.projectionRate !== undefined);
  assert.ok(result.examples!.some((e) => e.target === 'defended') && result.examples!.some((e) => e.target === 'baseline'));
});

test('CLI: evaluate --defense dae prints the threshold table; fool runs the generator; bad defense flags are refused', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-cli-def-'));
  const common = ['--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--labels', DEMO_TEST_LABELS, '--limit', '100', '--threads', '1', '--cache-dir', cacheDir];
  const dae = [
    '--defense',
    'dae',
    '--layer',
    'input',
    '--reference',
    DEMO_TRAIN_IMAGES,
    '--reference-labels',
    DEMO_TRAIN_LABELS,
    '--reference-limit',
    '600',
    '--hidden',
    '32',
    '--epochs',
    '2',
  ];
  const r = cli(['evaluate', ...common, ...dae, '--out', path.join(dir, 'dae.json')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Defense: dae after 'input'/);
  assert.match(r.stdout, /threshold/);
  const result = JSON.parse(readFileSync(path.join(dir, 'dae.json'), 'utf8'));
  assert.deepEqual(
    result.defense.thresholds.defended.map((t: { threshold: number }) => t.threshold),
    [0, 0.9, 0.99],
  );
  assert.equal(result.defense.thresholds.defended[0].rejectionRate, 0);

  const fool = cli(['fool', ...common, ...dae, '--fool-targets', '0,1', '--fool-steps', '60', '--out', path.join(dir, 'fool.json')]);
  assert.equal(fool.code, 0, fool.stderr);
  assert.match(fool.stdout, /Fooling generator/);
  const fooled = JSON.parse(readFileSync(path.join(dir, 'fool.json'), 'utf8'));
  assert.equal(fooled.fooling.baseline[0].runs.length, 2);
  assert.ok(fooled.fooling.defended, 'the dAE-scaled model is attacked too');

  const wrong = cli(['evaluate', ...common, '--defense', 'dae', '--layer', 'input', '--reference', DEMO_TRAIN_IMAGES, '--k', '5']);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /--k is not an option of the dae defense/);
  const noLayer = cli([
    'evaluate',
    ...common,
    '--defense',
    'lesci',
    '--layer',
    'nope',
    '--reference',
    DEMO_TRAIN_IMAGES,
    '--reference-labels',
    DEMO_TRAIN_LABELS,
    '--out',
    path.join(dir, 'x.json'),
  ]);
  assert.equal(noLayer.code, 2);
  assert.match(noLayer.stderr, /no tensor named 'nope'/);
  assert.ok(!existsSync(path.join(dir, 'x.json')));
});
