/**
 * The dAE trained on onnxruntime against an independent implementation: scripts/reference_dae.py
 * trains the same dAE in plain numpy (hand-written gradients and Adam, float32) on the same images
 * with the same initial weights, orders and noise (its port of src/core/random.ts), written to
 * test/fixtures/dae-reference.json. And a cancelled fit (mid-epoch) leaves no cache entry.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isCancelled } from '../../src/core/cancel';
import { fitDae, type DaeParams } from '../../src/core/defenses/dae';
import { fitDefense } from '../../src/core/defenses/fit';
import { inspectModel } from '../../src/core/eval/model-session';
import type { DefensePlan } from '../../src/protocol/experiment';
import { DEMO_MODEL, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, ROOT } from '../helpers/cli';
import { demoImages } from '../helpers/demo-data';

interface Reference {
  config: { limit: number; hidden: number; epochs: number; batchSize: number; sigma: number; learningRate: number; seed: number };
  lossHistory: number[];
  cleanMse: { initial: number; final: number };
}

const reference = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'dae-reference.json'), 'utf8')) as Reference;

/**
 * Tolerance: both sides compute in float32 from identical inputs and random draws, so they differ by
 * rounding only (matrix products and means summed in another order), which the 48 Adam steps carry
 * forward. Observed: 1e-6 on the loss curve, 5e-6 on the clean reconstruction error; allowed: 1e-4.
 */
const TOLERANCE = 1e-4;

test(`a dAE trained on onnxruntime reaches the numpy reference's reconstruction error (same data and seeds, ${TOLERANCE} relative)`, async (t) => {
  const c = reference.config;
  const data = await demoImages(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, c.limit);
  const stage = await fitDae(
    { activations: data.x, n: data.count, dims: [784], layer: 'input' },
    { hidden: c.hidden, epochs: c.epochs, batchSize: c.batchSize, sigma: c.sigma, learningRate: c.learningRate, seed: c.seed, log: () => {} },
  );
  const p = stage.params as unknown as DaeParams;
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
  t.diagnostic(
    `clean MSE ${p.cleanMse.initial.toFixed(6)} → ${p.cleanMse.final.toFixed(6)} (numpy ${reference.cleanMse.initial.toFixed(6)} → ${reference.cleanMse.final.toFixed(6)}); loss per epoch ${p.lossHistory.map((v) => v.toFixed(6)).join(', ')} (numpy ${reference.lossHistory.map((v) => v.toFixed(6)).join(', ')})`,
  );
  assert.ok(rel(p.cleanMse.initial, reference.cleanMse.initial) < TOLERANCE, 'same initial weights');
  assert.ok(rel(p.cleanMse.final, reference.cleanMse.final) < TOLERANCE, `final clean MSE ${p.cleanMse.final} vs ${reference.cleanMse.final}`);
  assert.equal(p.lossHistory.length, reference.lossHistory.length);
  p.lossHistory.forEach((v, e) => assert.ok(rel(v, reference.lossHistory[e]) < TOLERANCE, `epoch ${e}: ${v} vs ${reference.lossHistory[e]}`));
});

/** A signal that fires when it is consulted for the `reads`-th time: the trainer consults it before every batch. */
function abortOnRead(reads: number): { signal: AbortSignal; count: () => number } {
  const controller = new AbortController();
  let count = 0;
  const signal = new Proxy(controller.signal, {
    get(target, prop) {
      if (prop === 'aborted' && ++count === reads) controller.abort();
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { signal, count: () => count };
}

test('a dAE fit cancelled mid-epoch rejects with a cancellation and leaves no cache entry; the next fit is cached', async () => {
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'rlab-train-cancel-'));
  const { loaded, graph } = await inspectModel(DEMO_MODEL);
  const ref = await demoImages(DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS, 600);
  const plan: DefensePlan = { kind: 'dae', layer: 'input', reference: DEMO_TRAIN_IMAGES, dae: { hidden: 16, epochs: 3 } };
  const ctx = {
    loaded,
    graph,
    reference: { x: ref.x, labels: ref.labels, count: ref.count, sha256: 'demo-600' },
    seed: 0,
    cacheDir,
    threads: 1,
    batchSize: 100,
    log: () => {},
  };
  // 600 samples in batches of 64: 10 batches an epoch; the 15th look falls in the middle of the second epoch.
  const abort = abortOnRead(15);
  await assert.rejects(fitDefense(plan, { ...ctx, signal: abort.signal }), (e: Error) => isCancelled(e) && /cancelled/.test(e.message));
  assert.equal(abort.count(), 15, 'training stopped at the batch where the signal fired');
  assert.deepEqual(readdirSync(cacheDir), [], 'no cache entry, no temporary file');
  const fitted = await fitDefense(plan, ctx);
  assert.equal(fitted.cached, false);
  assert.ok(existsSync(fitted.cacheFile));
  assert.equal((await fitDefense(plan, ctx)).cached, true);
});
