// Overall progress: the attack budget in gradient evaluations per sample (hand-counted from the
// attacks' parameters), and the estimate of the time left from a calibration, then from the pace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attackWork, WorkTracker } from '../../src/core/eval/progress';
import { formatEta } from '../../src/protocol/eta';

test('attack work: steps × restarts × target classes; a forward query is a third of a gradient', () => {
  assert.equal(attackWork({ loss: 'ce' }), 1); // FGSM: one gradient
  assert.equal(attackWork({ steps: 20, restarts: 1 }), 20);
  assert.equal(attackWork({ steps: 100, restarts: 2, targetClasses: 9 }), 1800); // APGD-T
  assert.equal(attackWork({ queries: 5000 }), 5000 / 3); // Square
});

test('work tracker: overall progress and the time left, calibrated first, then from the pace', () => {
  let now = 0;
  const w = new WorkTracker(() => now);
  w.plan(1000);
  assert.deepEqual(w.overall(), { done: 0, total: 1000 });
  w.calibrate(300); // 300 images/s forward → 0.01 s per gradient evaluation
  assert.equal(w.overall().etaSeconds, 10);
  w.begin(400);
  now = 4;
  w.advance(50, 100); // half of 400 units in 4 s: 50 units/s
  const o = w.overall();
  assert.equal(o.done, 200);
  assert.equal(o.etaSeconds, (4 / 200) * 800);
  w.end();
  assert.equal(w.overall().done, 400);
  w.begin(700); // more than planned: the plan grows instead of passing 100%
  w.end();
  assert.deepEqual({ done: w.overall().done, total: w.overall().total }, { done: 1100, total: 1100 });
});

test('time left in words', () => {
  assert.equal(formatEta(12), 'about 10 s left');
  assert.equal(formatEta(150), 'about 3 min left');
  assert.equal(formatEta(5400), 'about 1.5 h left');
});
