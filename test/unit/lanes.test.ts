/**
 * OnnxLanes: classifier copies in worker threads. Spreading batches over lanes must not change a
 * single result (every sample draws from its own random stream), whichever path an attack takes
 * (fused L∞ step, loss gradient, logits only); cancelling stops the run; bad models fail clearly.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CancelledError } from '../../src/core/cancel';
import { runAttack, type AttackConfig } from '../../src/core/attacks/run';
import { UserError } from '../../src/core/errors';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { openClassifier, onnxClassifier, laneInit } from '../../src/core/eval/model-session';
import { encodeModel } from '../../src/core/onnx/proto';
import { OnnxLanes, type LaneInit } from '../../src/core/runtime/lanes';
import type { RunResult } from '../../src/protocol/run-result';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';
import { shapesOf } from '../helpers/gradcheck';
import { seededValues } from '../helpers/models';

async function demoSetup() {
  const m = await openClassifier(DEMO_MODEL, { ep: 'cpu', threads: 2 });
  const classifier = onnxClassifier(m, { ep: 'cpu', threads: 2 });
  const init: LaneInit = laneInit(m, { ep: 'cpu', threads: 1 });
  return { m, classifier, init };
}

test('attacks spread over 2 lanes give exactly the results of one classifier (fused step, gradient and query paths)', async () => {
  const { m, classifier, init } = await demoSetup();
  const lanes = await OnnxLanes.start(init, 2);
  try {
    const images = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 200);
    const data = { x: images.x, labels: images.labels, count: images.count };
    const configs: AttackConfig[] = [
      { attack: 'pgd', norm: 'linf', eps: 0.03, steps: 5 },
      { attack: 'mifgsm', norm: 'linf', eps: 0.03, steps: 5 },
      { attack: 'bim', norm: 'l2', eps: 1, steps: 5, targeted: 'random' },
      { attack: 'square', norm: 'linf', eps: 0.05, queries: 30 },
    ];
    for (const config of configs) {
      let progress = 0;
      const one = await runAttack(classifier, data, config, { batchSize: 30, seed: 3, keepExamples: 5 });
      const spread = await runAttack(classifier, data, config, {
        batchSize: 30,
        seed: 3,
        keepExamples: 5,
        lanes: lanes.lanes,
        onProgress: (done) => (progress = Math.max(progress, done)),
      });
      const { seconds: _a, ...a } = one;
      const { seconds: _b, ...b } = spread;
      assert.deepEqual(b, a, `${config.attack} ${config.norm}`);
      assert.equal(progress, data.count, 'progress reaches every sample');
      assert.ok(a.accuracy < a.cleanAccuracy, `${config.attack} lowers the accuracy`);
    }

    // Cancelling: the run rejects with CancelledError, and the lanes stay usable.
    const controller = new AbortController();
    const cancelled = runAttack(classifier, data, configs[0], {
      batchSize: 20,
      seed: 3,
      lanes: lanes.lanes,
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    await assert.rejects(cancelled, (e: Error) => e instanceof CancelledError);
    const logits = await lanes.lanes[0].logits(data.x.subarray(0, 784), 1);
    assert.equal(logits.length, 10);
  } finally {
    await lanes.release();
    await classifier.release();
    await m.session.release();
  }
});

test('lanes that cannot open their model fail to start with the reason and leave no worker running', async () => {
  const { m, init } = await demoSetup();
  await m.session.release();
  await assert.rejects(OnnxLanes.start({ ...init, model: new Uint8Array([1, 2, 3]) }, 2), /lane failed to start.*onnxruntime could not load the model/s);
});

test('an error inside a lane reaches the caller as the same kind of error: a model without input gradients gives the UserError that names the op', async () => {
  const b = new GraphBuilder();
  const z = b.op('Gemm', [b.op('Flatten', ['x']), b.floatConst('w', [3, 4], seededValues(12, 1, 0.5))], { transB: 1 });
  b.node('Erf', [z], {}, ['logits']);
  const model = makeModel(b.graph('erf', [tensorValueInfo('x', ['N', 1, 2, 2])], [tensorValueInfo('logits', ['N', 3])]), 13);
  const lanes = await OnnxLanes.start(
    {
      model: encodeModel(model),
      shapes: [...(await shapesOf(model))],
      input: 'x',
      output: 'logits',
      sampleDims: [1, 2, 2],
      numClasses: 3,
      sessionOptions: { ep: 'cpu', threads: 1 },
    },
    1,
  );
  try {
    const x = new Float32Array(8).fill(0.5);
    assert.equal((await lanes.lanes[0].logits(x, 2)).length, 6);
    await assert.rejects(
      lanes.lanes[0].lossGradient(x, 2, Int32Array.of(0, 1), 'ce-sum'),
      (e: Error) => e instanceof UserError && /Erf/.test(e.message) && /spsa,square/.test(e.message),
    );
  } finally {
    await lanes.release();
  }
});

test('CLI: evaluate --lanes 2 and --lanes auto run the attacks, on the defended model too, in lane workers with the results of --lanes 1', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-lanes-'));
  const run = (lanes: string) => {
    const out = path.join(dir, `lanes-${lanes}.json`);
    const r = cli([
      'evaluate',
      '--model',
      DEMO_MODEL,
      '--data',
      DEMO_TEST_IMAGES,
      '--labels',
      DEMO_TEST_LABELS,
      '--limit',
      '150',
      '--batch',
      '50',
      '--threads',
      '2',
      '--lanes',
      lanes,
      '--ep',
      'cpu',
      '--attack',
      'pgd,square',
      '--queries',
      '30',
      '--eps',
      '0.03',
      '--steps',
      '3',
      // LESCI vote: transfer, adaptive (and its variants) and gradient-free run in lanes; direct does not.
      '--defense',
      'lesci',
      '--mode',
      'vote',
      '--layer',
      '/features/features.5/MaxPool_output_0',
      '--reference',
      DEMO_TRAIN_IMAGES,
      '--reference-labels',
      DEMO_TRAIN_LABELS,
      '--reference-limit',
      '500',
      '--threat',
      'transfer,direct,adaptive,gradient-free',
      '--cache-dir',
      path.join(dir, 'cache'),
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return { result: JSON.parse(readFileSync(out, 'utf8')) as RunResult, log: r.stderr + r.stdout };
  };
  const one = run('1'),
    two = run('2'),
    auto = run('auto');
  assert.equal(two.result.runtime.lanes, 2);
  assert.equal(one.result.runtime.lanes, 1);
  assert.equal(one.result.runtime.lanesChoice, '--lanes 1 as asked');
  // 150 samples in batches of 50 on 2 threads: auto picks 2 lanes here (the threads are the limit).
  assert.equal(auto.result.runtime.lanes, 2);
  assert.match(auto.result.runtime.lanesChoice!, /^auto: 2 lanes, limited by 2 threads/);
  assert.equal((two.log.match(/Attacks run in 2 lanes/g) ?? []).length, 2, 'lanes for the baseline and for the defended attacks');
  const entries = (r: RunResult) => r.attacks!.map(({ seconds: _, ...a }) => a);
  assert.deepEqual(entries(two.result), entries(one.result));
  assert.deepEqual(entries(auto.result), entries(one.result));
  assert.deepEqual(two.result.defense!.worstCase, one.result.defense!.worstCase);
});
