/**
 * APGD (src/core/attacks/apgd.ts): the checkpoint schedule against the paper's formula computed by
 * hand, the step-size halving and restart from x_max on a scripted classifier, batch-size
 * independence, the threat model, cancellation, and APGD-CE / APGD-T on the demo model against an
 * independent PyTorch implementation (test/fixtures/apgd-reference.json, written by
 * scripts/reference_apgd.py).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { apgd, apgdCe, apgdCheckpoints, apgdT, type ApgdOptions } from '../../src/core/attacks/apgd';
import { APGD_DEFAULTS } from '../../src/core/attacks/apgd-defaults';
import type { AttackOutcome, Classifier, LossKind } from '../../src/core/attacks/types';
import { openClassifier, onnxClassifier } from '../../src/core/eval/model-session';
import { Rng } from '../../src/core/random';
import { demoImages, relativeL2 } from '../helpers/demo-data';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, ROOT } from '../helpers/cli';

interface RefRun {
  attack: 'apgd-ce' | 'apgd-t';
  loss: string;
  norm: 'linf' | 'l2';
  eps: number;
  randomStart: boolean;
  accuracy: number;
  robust: number[];
}
const ref = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'apgd-reference.json'), 'utf8')) as {
  modelSha256: string;
  count: number;
  steps: number;
  targetClasses: number;
  checkpoints100: number[];
  runs: RefRun[];
  gradLabels: number[];
  gradTargets: number[];
  dlrGradFirst4: number[];
  dlrTargetedGradFirst4: number[];
};

test('checkpoints: w_j = ⌈p_j·N⌉ with p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (computed by hand)', () => {
  // p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06): 0.22 + 0.19, 0.41 + 0.16, 0.57 + 0.13, 0.70 + 0.10,
  // 0.80 + 0.07, 0.87 + 0.06, 0.93 + 0.06, then 1.05 > 1.
  assert.deepEqual(apgdCheckpoints(100), [0, 22, 41, 57, 70, 80, 87, 93, 99]);
  assert.deepEqual(apgdCheckpoints(1000), [0, 220, 410, 570, 700, 800, 870, 930, 990]);
  // N = 50: 11, 20.5, 28.5, 35, 40, 43.5, 46.5, 49.5 rounded up.
  assert.deepEqual(apgdCheckpoints(50), [0, 11, 21, 29, 35, 40, 44, 47, 50]);
  // N = 10: 2.2, 4.1, 5.7, 7, 8, 8.7, 9.3, 9.9 rounded up; the repeated 10 is dropped.
  assert.deepEqual(apgdCheckpoints(10), [0, 3, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(apgdCheckpoints(1), [0, 1]);
  assert.deepEqual(ref.checkpoints100, apgdCheckpoints(100), 'the PyTorch reference uses the same schedule');
});

/**
 * One sample, two input values, three classes; lossGradient call c returns the gradient
 * (g_c, g_c) (default +1) and the logits (1, v_c/100, 0) that script the loss: at label 0 the DLR
 * loss is −(1 − v_c/100)/(1 − 0), which increases with v_c (0 ≤ v_c < 100), while class 0 stays
 * predicted (never fooled). Records the iterates it is called at.
 */
function scripted(v: (call: number) => number, g: (call: number) => number = () => 1): Classifier & { xs: number[]; forwards: number } {
  const c = {
    numClasses: 3,
    sampleDims: [2],
    xs: [] as number[],
    forwards: 0,
    async logits(_x: Float32Array, n: number) {
      c.forwards += n;
      return Float32Array.from([1, 0.5, 0]);
    },
    async lossGradient(x: Float32Array) {
      const call = c.xs.length;
      c.xs.push(x[0]);
      return { grad: Float32Array.from([g(call), g(call)]), logits: Float32Array.from([1, v(call) / 100, 0]) };
    },
  };
  return c;
}

test('step size halves and the iterate restarts from x_max at the checkpoints (conditions 1 and 2)', async () => {
  const x = Float32Array.from([0.5, 0.5]);
  const options: ApgdOptions = { norm: 'linf', eps: 0.1, loss: 'dlr', randomStart: false };
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-6;

  // Condition 1: a constant loss never increases, so every checkpoint halves η and returns to
  // x_max = x⁽⁰⁾ = 0.5. With gradient +1 and η⁽⁰⁾ = 0.2 the iterate sits at the ball's edge 0.6;
  // after the reset at w_j (η = 0.2/2^j, previous iterate 0.6):
  //   x⁽ʷ⁺¹⁾ = 0.5 + 0.75·(min(0.5 + η, 0.6) − 0.5) + 0.25·(0.5 − 0.6)
  // = 0.55 (j = 1), 0.5125 (j = 2), 0.49375 (j = 3).
  // The gradient at x⁽²²⁾ is −1, but the step after the reset takes x_max's gradient (+1).
  const flat = scripted(
    () => 0,
    (c) => (c === 22 ? -1 : 1),
  );
  const res = await apgd(flat, x, Int32Array.of(0), options);
  assert.equal(flat.xs.length, 100, 'N_iter gradient evaluations');
  assert.equal(flat.forwards, 1, 'and one forward pass at x⁽ᴺ⁾');
  assert.deepEqual([res.gradientEvaluations[0], res.queries[0]], [100, 1]);
  assert.equal(flat.xs[0], 0.5);
  for (let t = 1; t <= 22; t++) assert.ok(close(flat.xs[t], 0.6), `x(${t}) = ${flat.xs[t]}`);
  assert.ok(close(flat.xs[23], 0.55), `x(23) = ${flat.xs[23]}`);
  for (let t = 24; t <= 41; t++) assert.ok(close(flat.xs[t], 0.6), `x(${t}) = ${flat.xs[t]}`);
  assert.ok(close(flat.xs[42], 0.5125), `x(42) = ${flat.xs[42]}`);
  assert.ok(close(flat.xs[57], 0.6) && close(flat.xs[58], 0.49375), `x(57), x(58) = ${flat.xs[57]}, ${flat.xs[58]}`);
  assert.equal(res.fooled[0], 0);
  assert.ok(res.linf[0] <= 0.1 + 1e-7);

  // A loss rising at every step: condition 1 never holds, f_max improves, η stays 0.2: x stays at 0.6.
  const rising = scripted((c) => c / 10);
  await apgd(rising, x, Int32Array.of(0), options);
  for (let t = 1; t < 100; t++) assert.ok(close(rising.xs[t], 0.6), `rising: x(${t}) = ${rising.xs[t]}`);

  // Condition 2 at w₁ = 22: the loss rises at every step after x⁽⁰⁾ but stays below f(x⁽⁰⁾), so
  // f_max⁽²²⁾ = f_max⁽⁰⁾ with no halving before: η halves and x returns to x_max = x⁽⁰⁾ = 0.5.
  const below = scripted((c) => (c === 0 ? 5 : c / 100));
  await apgd(below, x, Int32Array.of(0), options);
  assert.ok(close(below.xs[22], 0.6) && close(below.xs[23], 0.55), `condition 2: x(22), x(23) = ${below.xs[22]}, ${below.xs[23]}`);
});

test('condition 1 counts f(x⁽ⁱ⁺¹⁾) > f(x⁽ⁱ⁾) from x⁽¹⁾ on, strictly below ρ·span, and after a reset against f_max', async () => {
  const x = Float32Array.from([0.5, 0.5]);
  const options: ApgdOptions = { norm: 'linf', eps: 0.1, loss: 'dlr', randomStart: false };
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-6;
  /** v for calls 0…, from per-call differences (the first value is v_0). */
  const walk = (start: number, deltas: number[]) => deltas.reduce((out, dv) => [...out, out[out.length - 1] + dv], [start]);

  // At w₁ = 22 (span 22, ρ·span = 16.5): 16 rises and 6 falls among f(x⁽¹⁾) … f(x⁽²²⁾) halve η
  // (16 < 16.5; counting f(x⁽⁰⁾) too would make 17). The gradient turns to −1 from x⁽²²⁾ on, so
  // x⁽²³⁾ = 0.6 − 0.75·η: 0.525 after the halving (0.45 without).
  const b = walk(
    0,
    Array.from({ length: 22 }, (_, i) => ([3, 6, 9, 12, 15, 18].includes(i + 1) ? -0.5 : 1)),
  );
  const fromOne = scripted(
    (c) => b[Math.min(c, 22)] + (c > 22 ? c / 1000 : 0),
    (c) => (c < 22 ? 1 : -1),
  );
  await apgd(fromOne, x, Int32Array.of(0), options);
  assert.ok(close(fromOne.xs[23], 0.525), `x(23) = ${fromOne.xs[23]}`);

  // At w₃ = 57 (span 16, ρ·span = 12): exactly 12 rises do not halve (12 < 12 is false). No
  // halving before (the loss rises at every step up to x⁽⁴¹⁾) and f_max improves: η is still 0.2,
  // and with the gradient −1 from x⁽⁵⁷⁾ on, x⁽⁵⁸⁾ = 0.6 − 0.75·0.2 = 0.45.
  const a = [...Array.from({ length: 42 }, (_, c) => c), 40, 41.5, 42, 41, 42.5, 43, 42, 43.5, 44, 43, 44.5, 45, 45.5, 46, 46.5, 47];
  const exact = scripted(
    (c) => (c < a.length ? a[c] : 47 + c / 1000),
    (c) => (c < 57 ? 1 : -1),
  );
  await apgd(exact, x, Int32Array.of(0), options);
  assert.ok(close(exact.xs[57], 0.6) && close(exact.xs[58], 0.45), `x(57), x(58) = ${exact.xs[57]}, ${exact.xs[58]}`);

  // A reset at w₁ = 22 (the loss only falls after x⁽⁰⁾: x_max = x⁽⁰⁾ = 0.5, η → 0.1). The next
  // comparison is f(x⁽²³⁾) > f_max, not > f(x⁽²²⁾): f(x⁽²³⁾) lies between them, no rise. Then 14
  // rises and 4 falls up to x⁽⁴¹⁾, all below f_max: 14 < ρ·19 = 14.25 halves again (15 would not),
  // back to x_max = 0.5 with η = 0.05: x⁽⁴²⁾ = 0.5 + 0.75·0.05 + 0.25·(0.5 − 0.6) = 0.5125.
  const r = [
    ...walk(10, Array(22).fill(-0.1)),
    9,
    ...walk(
      9,
      Array.from({ length: 18 }, (_, i) => ([2, 7, 11, 15].includes(i) ? -0.01 : 0.05)),
    ).slice(1),
  ];
  const reset = scripted((c) => (c < r.length ? r[c] : 0));
  await apgd(reset, x, Int32Array.of(0), options);
  assert.equal(r.length, 42);
  assert.ok(close(reset.xs[23], 0.55), `x(23) = ${reset.xs[23]}`);
  assert.ok(close(reset.xs[41], 0.6) && close(reset.xs[42], 0.5125), `x(41), x(42) = ${reset.xs[41]}, ${reset.xs[42]}`);
});

/**
 * z = W x + b with the exact input gradients of the losses APGD asks for (float64, from the logit
 * gradients: CE softmax − onehot; DLR and targeted DLR as in loss.ts), to test the attack without
 * onnxruntime.
 */
class LinearModel implements Classifier {
  readonly numClasses: number;
  gradientCalls = 0;
  onGradient?: () => void;
  constructor(
    readonly W: Float64Array,
    readonly b: Float64Array,
    readonly sampleDims: readonly number[],
  ) {
    this.numClasses = b.length;
  }
  get d() {
    return this.W.length / this.numClasses;
  }
  z(x: Float32Array, r: number): Float64Array {
    const { d, numClasses: k } = this;
    const z = Float64Array.from(this.b);
    for (let j = 0; j < k; j++) for (let i = 0; i < d; i++) z[j] += this.W[j * d + i] * x[r * d + i];
    return z;
  }
  async logits(x: Float32Array, n: number) {
    const out = new Float32Array(n * this.numClasses);
    for (let r = 0; r < n; r++) out.set(this.z(x, r), r * this.numClasses);
    return out;
  }
  async lossGradient(x: Float32Array, n: number, labels: Int32Array, loss: LossKind, targets?: Int32Array) {
    this.gradientCalls++;
    this.onGradient?.();
    const { d, numClasses: k } = this;
    const grad = new Float32Array(n * d),
      logits = new Float32Array(n * k);
    for (let r = 0; r < n; r++) {
      const z = this.z(x, r),
        y = labels[r];
      logits.set(z, r * k);
      const dz = new Float64Array(k);
      const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => z[b] - z[a] || a - b);
      if (loss === 'ce-sum') {
        const mx = Math.max(...z),
          e = z.map((v) => Math.exp(v - mx)),
          s = e.reduce((a, v) => a + v, 0);
        for (let j = 0; j < k; j++) dz[j] = e[j] / s - (j === y ? 1 : 0);
      } else if (loss === 'dlr' || loss === 'dlr-targeted') {
        const other = loss === 'dlr' ? order.find((j) => j !== y)! : targets![r];
        const gap = loss === 'dlr' ? z[order[0]] - z[order[2]] + 1e-12 : z[order[0]] - (z[order[2]] + z[order[3]]) / 2 + 1e-12;
        const num = z[y] - z[other];
        dz[other] += 1 / gap;
        dz[y] -= 1 / gap;
        dz[order[0]] += num / gap / gap;
        if (loss === 'dlr') dz[order[2]] -= num / gap / gap;
        else {
          dz[order[2]] -= num / gap / gap / 2;
          dz[order[3]] -= num / gap / gap / 2;
        }
      } else throw new Error(`loss ${loss}`);
      for (let j = 0; j < k; j++) for (let i = 0; i < d; i++) grad[r * d + i] += dz[j] * this.W[j * d + i];
    }
    return { grad, logits };
  }
}

/** A random 16-dim, 5-class linear model and n inputs in [0, 1] labelled with its own predictions. */
function setup(n = 30, seed = 7) {
  const D = 16,
    K = 5,
    rng = new Rng(seed);
  const model = new LinearModel(rng.normals(new Float64Array(K * D)), new Float64Array(K), [1, 4, 4]);
  const x = rng.uniform(new Float32Array(n * D));
  const labels = Int32Array.from({ length: n }, (_, r) => {
    const z = model.z(x, r);
    return z.indexOf(Math.max(...z));
  });
  return { model, x, labels, n, D };
}

/** The attack over the samples in batches of `batch`, each sample keeping its id. */
async function inBatches(
  model: Classifier,
  x: Float32Array,
  labels: Int32Array,
  d: number,
  batch: number,
  options: ApgdOptions,
  seed: number,
): Promise<AttackOutcome> {
  const n = labels.length;
  const parts: AttackOutcome[] = [];
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const ids = Array.from({ length: e - s }, (_, i) => s + i);
    parts.push(await apgd(model, x.slice(s * d, e * d), labels.slice(s, e), { ...options, sampleIds: ids }, new Rng(seed)));
  }
  const cat = <T extends Float32Array | Int32Array | Uint8Array | Float64Array>(key: keyof AttackOutcome) =>
    parts.flatMap((p) => Array.from(p[key] as T)) as number[];
  return {
    x: Float32Array.from(cat('x')),
    fooled: Uint8Array.from(cat('fooled')),
    predictions: Int32Array.from(cat('predictions')),
    linf: Float64Array.from(cat('linf')),
    l2: Float64Array.from(cat('l2')),
    gradientEvaluations: Int32Array.from(cat('gradientEvaluations')),
    queries: Int32Array.from(cat('queries')),
  };
}

test('same seed, same result whatever the batch size; another seed differs', async () => {
  const { model, x, labels, D } = setup(24);
  for (const loss of ['ce', 'dlr', 'dlr-targeted'] as const) {
    const options: ApgdOptions = { norm: 'linf', eps: 0.08, loss, steps: 20, restarts: 2, targetClasses: 3 };
    const whole = await inBatches(model, x, labels, D, 24, options, 5);
    const small = await inBatches(model, x, labels, D, 5, options, 5);
    assert.deepEqual(small, whole, `${loss}: batch size changed the result`);
    const other = await inBatches(model, x, labels, D, 24, options, 6);
    assert.notDeepEqual(Array.from(other.x), Array.from(whole.x), `${loss}: the seed is not used`);
    assert.ok(
      whole.fooled.some((f) => f) && whole.fooled.some((f) => !f),
      `${loss}: fooled ${whole.fooled.reduce((a, b) => a + b, 0)} of 24 (pick an eps where some are)`,
    );
  }
});

test('every output stays in the eps-ball (L∞ and L2) and in the input range; first adversarial iterate, else the best', async () => {
  const { model, x, labels, n, D } = setup(30);
  for (const norm of ['linf', 'l2'] as const) {
    const eps = norm === 'linf' ? 0.08 : 0.4;
    for (const loss of ['ce', 'dlr', 'dlr-targeted'] as const) {
      const res = await apgd(model, x, labels, { norm, eps, loss, steps: 30, targetClasses: 4 }, new Rng(1));
      const zs = await model.logits(res.x, n);
      for (let r = 0; r < n; r++) {
        assert.ok(
          (norm === 'linf' ? res.linf[r] : res.l2[r]) <= eps * (1 + 1e-6) + 1e-7,
          `${norm} ${loss} sample ${r}: ‖δ‖ = ${norm === 'linf' ? res.linf[r] : res.l2[r]}`,
        );
        for (let i = r * D; i < (r + 1) * D; i++) assert.ok(res.x[i] >= 0 && res.x[i] <= 1);
        // The returned input's prediction is the reported one, and `fooled` says whether it is wrong.
        const z = zs.subarray(r * 5, (r + 1) * 5);
        const pred = z.indexOf(Math.max(...z));
        assert.equal(res.predictions[r], pred, `${norm} ${loss} sample ${r}`);
        assert.equal(res.fooled[r], pred !== labels[r] ? 1 : 0);
        // A fooled sample stopped at its first adversarial iterate: fewer gradients than the budget.
        if (res.fooled[r] && loss !== 'dlr-targeted') assert.ok(res.gradientEvaluations[r] <= 30);
      }
      assert.ok(
        res.fooled.some((f) => f),
        `${norm} ${loss}: nothing fooled`,
      );
    }
  }
  // A custom range binds too.
  const res = await apgdCe(model, x, labels, { norm: 'l2', eps: 0.4, range: [0.2, 0.8], steps: 10 }, new Rng(1));
  for (const v of res.x) assert.ok(v >= 0.2 - 1e-7 && v <= 0.8 + 1e-7);
});

test('targeted APGD reaches the given targets; APGD-T targets the most likely wrong classes in turn', async () => {
  const { model, x, labels, n } = setup(30);
  const targets = Int32Array.from(labels, (y) => (y + 1) % 5);
  for (const loss of ['ce', 'dlr-targeted'] as const) {
    const res = await apgd(model, x, labels, { norm: 'linf', eps: 0.3, loss, targets, steps: 30 }, new Rng(2));
    for (let r = 0; r < n; r++) if (res.fooled[r]) assert.equal(res.predictions[r], targets[r]);
    assert.ok(res.fooled.reduce((a, b) => a + b, 0) >= 10, `targeted ${loss}: ${res.fooled.reduce((a, b) => a + b, 0)} reached their target`);
  }
  // APGD-T with one target class costs one clean forward pass and at most `steps` gradients per sample.
  const one = await apgdT(model, x, labels, { norm: 'linf', eps: 0.05, steps: 10, targetClasses: 1 }, new Rng(2));
  for (let r = 0; r < n; r++) assert.ok(one.gradientEvaluations[r] <= 10 && one.queries[r] >= 1 && one.queries[r] <= 2);
  const all = await apgdT(model, x, labels, { norm: 'linf', eps: 0.05, steps: 10, targetClasses: 9 }, new Rng(2));
  // 9 is capped at classes − 1 = 4 targets.
  assert.ok(Math.max(...all.gradientEvaluations) <= 40 && Math.max(...all.gradientEvaluations) > 10);
  assert.ok(all.fooled.reduce((a, b) => a + b, 0) >= one.fooled.reduce((a, b) => a + b, 0));
  assert.equal(APGD_DEFAULTS.targetClasses, 9);
});

test('options are checked; the DLR losses need 3 and 4 classes', async () => {
  const { model, x, labels } = setup(4);
  const bad: ApgdOptions[] = [
    { norm: 'linf', eps: 0.1, steps: 0 },
    { norm: 'linf', eps: 0.1, restarts: 0 },
    { norm: 'linf', eps: 0.1, rho: 0 },
    { norm: 'linf', eps: 0.1, rho: 1.5 },
    { norm: 'linf', eps: 0.1, momentum: 2 },
    { norm: 'linf', eps: 0.1, loss: 'cw' as 'ce' },
  ];
  for (const o of bad) await assert.rejects(apgd(model, x, labels, o), (e: unknown) => (e as Error).name === 'UserError', JSON.stringify(o));
  const three = new LinearModel(new Float64Array(3 * 16).fill(0.1), new Float64Array(3), [16]);
  await assert.rejects(apgd(three, x, Int32Array.from([0, 1, 2, 0]), { norm: 'linf', eps: 0.1, loss: 'dlr-targeted' }), /needs at least 4 classes/);
  await apgd(three, x, Int32Array.from([0, 1, 2, 0]), { norm: 'linf', eps: 0.1, loss: 'dlr', steps: 2 });
  const noGrad = { numClasses: model.numClasses, sampleDims: model.sampleDims, logits: model.logits.bind(model) };
  await assert.rejects(apgd(noGrad, x, labels, { norm: 'linf', eps: 0.1 }), /needs input gradients/);
});

test('cancellation: the signal stops the attack between steps', async () => {
  const { model, x, labels } = setup(20);
  const controller = new AbortController();
  model.gradientCalls = 0;
  model.onGradient = () => {
    if (model.gradientCalls === 3) controller.abort();
  };
  const started = performance.now();
  await assert.rejects(
    apgd(model, x, labels, { norm: 'linf', eps: 0.001, steps: 100_000, signal: controller.signal }),
    (e: unknown) => e instanceof Error && (e.name === 'CancelledError' || e.name === 'AbortError'),
  );
  assert.equal(model.gradientCalls, 3);
  assert.ok(performance.now() - started < 1000);
  const pre = new AbortController();
  pre.abort();
  model.gradientCalls = 0;
  await assert.rejects(
    apgd(model, x, labels, { norm: 'l2', eps: 0.1, signal: pre.signal }),
    (e: unknown) => e instanceof Error && /cancel|abort/i.test(`${e.name} ${e.message}`),
  );
  assert.equal(model.gradientCalls, 0);
});

test('APGD-CE and APGD-T on the demo model: robust accuracy equals the PyTorch reference within 1 point', async () => {
  assert.equal(
    createHash('sha256').update(readFileSync(DEMO_MODEL)).digest('hex'),
    ref.modelSha256,
    'the fixture was written for another demo model: rerun scripts/reference_apgd.py',
  );
  const m = await openClassifier(DEMO_MODEL, { ep: 'cpu', threads: 2 });
  const c = onnxClassifier(m, { ep: 'cpu', threads: 2 });
  try {
    const n = ref.count;
    const { x, labels } = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, n);

    // The DLR input gradients through the generated ONNX graph equal PyTorch autograd.
    const x4 = x.subarray(0, 4 * 784),
      y4 = Int32Array.from(ref.gradLabels),
      t4 = Int32Array.from(ref.gradTargets);
    const dlr = await c.lossGradient(x4, 4, y4, 'dlr');
    assert.ok(relativeL2(dlr.grad, ref.dlrGradFirst4) < 1e-4, `DLR gradient relative error ${relativeL2(dlr.grad, ref.dlrGradFirst4)}`);
    const dlrT = await c.lossGradient(x4, 4, y4, 'dlr-targeted', t4);
    assert.ok(
      relativeL2(dlrT.grad, ref.dlrTargetedGradFirst4) < 1e-4,
      `targeted DLR gradient relative error ${relativeL2(dlrT.grad, ref.dlrTargetedGradFirst4)}`,
    );

    const clean = await c.logits(x, n);
    for (const run of ref.runs) {
      const options: ApgdOptions = { norm: run.norm, eps: run.eps, steps: ref.steps, targetClasses: ref.targetClasses, randomStart: run.randomStart };
      const res = await (run.attack === 'apgd-t' ? apgdT : apgdCe)(c, x, labels, options, new Rng(0));
      // Robust: classified correctly clean and after the attack (the reference counts the same way).
      const robust = Array.from(labels, (y, i) => {
        const z = clean.subarray(i * 10, (i + 1) * 10);
        return z.indexOf(Math.max(...z)) === y && res.predictions[i] === y ? 1 : 0;
      });
      const accuracy = robust.reduce((a: number, b) => a + b, 0) / n;
      const agree = robust.filter((v, i) => v === run.robust[i]).length / n;
      const label = `${run.attack} ${run.norm} eps ${run.eps}${run.randomStart ? ' random start' : ''}`;
      assert.ok(Math.abs(accuracy - run.accuracy) <= 0.01 + 1e-9, `${label}: robust accuracy ${accuracy} vs PyTorch ${run.accuracy}`);
      // Without a random start both sides follow the same trajectories up to float rounding.
      if (!run.randomStart) assert.ok(agree >= 0.97, `${label}: per-sample robust flags agree on ${(100 * agree).toFixed(1)}%`);
      for (let i = 0; i < n; i++) assert.ok((run.norm === 'linf' ? res.linf[i] : res.l2[i]) <= run.eps + 1e-5);
    }
  } finally {
    await c.release();
    await m.session.release();
  }
});
