/**
 * FAB-T (src/core/attacks/fab.ts): the exact projection, the minimal distance on linear models
 * (closed form), the logit-difference gradient, batch-size independence, the threat model, and
 * robust accuracy on the demo model against PyTorch (test/fixtures/fab-reference.json, written by
 * scripts/reference_fab.py).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FAB_T, fabT, HyperplaneProjector, logitDifferenceGradient } from '../../src/core/attacks/fab';
import type { AttackOutcome, Classifier, LossKind, Norm } from '../../src/core/attacks/types';
import { CancelledError } from '../../src/core/cancel';
import { openClassifier, onnxClassifier } from '../../src/core/eval/model-session';
import { Rng } from '../../src/core/random';
import { demoImages } from '../helpers/demo-data';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, ROOT } from '../helpers/cli';

/**
 * z = W2·relu(W1·x + b1) + b2 (hidden > 0) or z = W·x + b (hidden = 0), with exact input gradients
 * of the summed 'ce-sum' and 'cw' losses (any other loss kind is refused).
 */
class JsNet implements Classifier {
  readonly numClasses: number;
  gradientRows = 0;
  forwardRows = 0;
  constructor(
    readonly d: number,
    readonly k: number,
    readonly hidden: number,
    readonly W1: Float64Array,
    readonly b1: Float64Array,
    readonly W2: Float64Array,
    readonly b2: Float64Array,
  ) {
    this.numClasses = k;
  }

  get sampleDims(): readonly number[] {
    return [this.d];
  }

  static random(d: number, k: number, hidden: number, seed: number): JsNet {
    const rng = new Rng(seed);
    if (hidden === 0)
      return new JsNet(d, k, 0, new Float64Array(0), new Float64Array(0), rng.normals(new Float64Array(k * d)), rng.normals(new Float64Array(k), 0, 0.5));
    return new JsNet(
      d,
      k,
      hidden,
      rng.normals(new Float64Array(hidden * d), 0, 1 / Math.sqrt(d)),
      rng.normals(new Float64Array(hidden), 0, 0.3),
      rng.normals(new Float64Array(k * hidden), 0, 3 / Math.sqrt(hidden)),
      new Float64Array(k),
    );
  }

  /** Hidden activations (or the input) and logits of row r. */
  private forward(x: ArrayLike<number>, r: number): { h: Float64Array; z: Float64Array } {
    const { d, k, hidden } = this;
    let h: Float64Array;
    if (hidden === 0) {
      h = Float64Array.from({ length: d }, (_, i) => x[r * d + i]);
    } else {
      h = Float64Array.from(this.b1);
      for (let u = 0; u < hidden; u++) {
        for (let i = 0; i < d; i++) h[u] += this.W1[u * d + i] * x[r * d + i];
        h[u] = Math.max(0, h[u]);
      }
    }
    const width = hidden || d;
    const z = Float64Array.from(this.b2);
    for (let j = 0; j < k; j++) for (let u = 0; u < width; u++) z[j] += this.W2[j * width + u] * h[u];
    return { h, z };
  }

  z(x: ArrayLike<number>, r: number): Float64Array {
    return this.forward(x, r).z;
  }

  /** ∇ₓ of Σ_j dz_j·z_j at row r. */
  vjp(x: ArrayLike<number>, r: number, dz: Float64Array): Float64Array {
    const { d, k, hidden } = this;
    const { h } = this.forward(x, r);
    const width = hidden || d;
    const dh = new Float64Array(width);
    for (let j = 0; j < k; j++) for (let u = 0; u < width; u++) dh[u] += dz[j] * this.W2[j * width + u];
    if (hidden === 0) return dh;
    const g = new Float64Array(d);
    for (let u = 0; u < hidden; u++) if (h[u] > 0) for (let i = 0; i < d; i++) g[i] += dh[u] * this.W1[u * d + i];
    return g;
  }

  async logits(x: Float32Array, n: number): Promise<Float32Array> {
    this.forwardRows += n;
    const out = new Float32Array(n * this.k);
    for (let r = 0; r < n; r++) out.set(this.z(x, r), r * this.k);
    return out;
  }

  async lossGradient(x: Float32Array, n: number, labels: Int32Array, loss: LossKind) {
    if (loss !== 'cw' && loss !== 'ce-sum') throw new Error(`JsNet: no ${loss} loss`);
    this.gradientRows += n;
    const { d, k } = this;
    const grad = new Float32Array(n * d);
    const logits = new Float32Array(n * k);
    for (let r = 0; r < n; r++) {
      const z = this.z(x, r);
      logits.set(z, r * k);
      const y = labels[r];
      const dz = new Float64Array(k);
      if (loss === 'cw') {
        let best = -1;
        for (let j = 0; j < k; j++) if (j !== y && (best < 0 || z[j] > z[best])) best = j;
        dz[best] += 1;
        dz[y] -= 1;
      } else {
        const mx = Math.max(...z);
        let s = 0;
        for (let j = 0; j < k; j++) s += Math.exp(z[j] - mx);
        for (let j = 0; j < k; j++) dz[j] = Math.exp(z[j] - mx) / s - (j === y ? 1 : 0);
      }
      grad.set(this.vjp(x, r, dz), r * d);
    }
    return { grad, logits };
  }
}

/** n inputs uniform in [lo, hi] labelled with the model's own predictions. */
function inputs(model: JsNet, n: number, seed: number, lo = 0, hi = 1) {
  const x = new Rng(seed).uniform(new Float32Array(n * model.d), lo, hi);
  const labels = Int32Array.from({ length: n }, (_, r) => {
    const z = model.z(x, r);
    return z.indexOf(Math.max(...z));
  });
  return { x, labels };
}

function distance(a: ArrayLike<number>, b: ArrayLike<number>, r: number, d: number, norm: Norm): number {
  let s = 0;
  for (let i = r * d; i < (r + 1) * d; i++) {
    const v = Math.abs(a[i] - b[i]);
    s = norm === 'linf' ? Math.max(s, v) : s + v * v;
  }
  return norm === 'linf' ? s : Math.sqrt(s);
}

/** Every returned input lies in the range and the eps-ball, norms and predictions are honest, and fooled ⇔ misclassified. */
function checkThreatModel(
  res: AttackOutcome,
  model: Classifier & { z?(x: ArrayLike<number>, r: number): Float64Array },
  x: Float32Array,
  labels: Int32Array,
  norm: Norm,
  eps: number,
  range: readonly [number, number] = [0, 1],
) {
  const d = x.length / labels.length;
  for (let r = 0; r < labels.length; r++) {
    const actual = distance(res.x, x, r, d, norm);
    assert.ok(actual <= eps + 1e-9, `sample ${r}: ${norm} ${actual} > ${eps}`);
    assert.ok(
      Math.abs(distance(res.x, x, r, d, 'linf') - res.linf[r]) < 1e-9 && Math.abs(distance(res.x, x, r, d, 'l2') - res.l2[r]) < 1e-9,
      `sample ${r}: reported norms`,
    );
    for (let i = r * d; i < (r + 1) * d; i++) assert.ok(res.x[i] >= range[0] && res.x[i] <= range[1], `sample ${r}: value ${res.x[i]} outside the range`);
    assert.equal(res.fooled[r], res.predictions[r] !== labels[r] ? 1 : 0, `sample ${r}: fooled flag`);
    if (model.z) {
      const z = model.z(res.x, r);
      assert.equal(res.predictions[r], z.indexOf(Math.max(...z)), `sample ${r}: prediction`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

test('the projection onto hyperplane ∩ box is the exact L∞ / L2 minimiser (optimality certificates)', () => {
  const rng = new Rng(5);
  const d = 30;
  const projector = new HyperplaneProjector(d);
  const out = new Float64Array(d);
  let missed = 0;
  for (let trial = 0; trial < 400; trial++) {
    const norm: Norm = trial % 2 ? 'l2' : 'linf';
    const [lo, hi] = trial % 4 < 2 ? [0, 1] : [-1, 2];
    const p = rng.uniform(new Float64Array(d), lo, hi);
    for (let i = 0; i < d; i += 5) p[i] = rng.next() < 0.5 ? lo : hi; // some coordinates on the bounds
    const w = rng.normals(new Float64Array(d));
    w[3] = 0;
    const c = rng.normal() * (trial % 3 === 0 ? 8 : 1);
    projector.project(p, w, c, norm, lo, hi, out);
    // The room of each coordinate in the direction that brings c + <w, δ> to 0.
    const dir = (i: number) => -Math.sign(c * w[i]);
    const room = (i: number) => (dir(i) > 0 ? hi - p[i] : p[i] - lo);
    let full = 0;
    for (let i = 0; i < d; i++) full += Math.abs(w[i]) * room(i);
    for (let i = 0; i < d; i++) assert.ok(p[i] + out[i] >= lo - 1e-12 && p[i] + out[i] <= hi + 1e-12, 'inside the box');
    assert.equal(out[3], 0, 'a coordinate with w = 0 does not move');
    if (full <= Math.abs(c)) {
      // The hyperplane misses the box: the box corner nearest to it.
      missed++;
      for (let i = 0; i < d; i++) if (w[i] !== 0) assert.ok(Math.abs(out[i] - dir(i) * room(i)) < 1e-12);
      continue;
    }
    let h = c;
    for (let i = 0; i < d; i++) h += w[i] * out[i];
    assert.ok(Math.abs(h) < 1e-9 * Math.max(1, Math.abs(c)), `on the hyperplane (${h})`);
    // The optimal displacement has the form δ_i = s_i·min(λ·a_i, room_i), a_i = 1 (L∞) or |w_i| (L2),
    // with λ set by bisection: by convexity (KKT) that is the unique minimiser.
    const a = (i: number) => (norm === 'linf' ? 1 : Math.abs(w[i]));
    const reach = (lambda: number) => {
      let s = 0;
      for (let i = 0; i < d; i++) s += Math.abs(w[i]) * Math.min(lambda * a(i), room(i));
      return s;
    };
    let l = 0,
      u = 1;
    while (reach(u) < Math.abs(c)) u *= 2;
    for (let it = 0; it < 200; it++) {
      const mid = (l + u) / 2;
      if (reach(mid) < Math.abs(c)) l = mid;
      else u = mid;
    }
    for (let i = 0; i < d; i++) {
      const expected = w[i] === 0 ? 0 : dir(i) * Math.min(u * a(i), room(i));
      assert.ok(Math.abs(out[i] - expected) < 1e-9, `${norm} trial ${trial} coordinate ${i}: ${out[i]} vs ${expected}`);
    }
  }
  assert.ok(missed > 10 && missed < 390, `both cases occur (${missed} misses)`);
});

test('on linear models FAB-T finds the minimal L∞ and L2 distance to misclassification (closed form) within 1%', async () => {
  // z = Wx + b: some z_t > z_y needs ‖δ‖ ≥ (z_y − z_t) / ‖w_y − w_t‖_dual (dual of L∞: L1; of L2: L2),
  // and equality is reached on the hyperplane; the range [−20, 20] keeps the box out of the way.
  const d = 16,
    k = 5,
    n = 25;
  const model = JsNet.random(d, k, 0, 11);
  const range = [-20, 20] as const;
  const { x, labels } = inputs(model, n, 12);
  for (const norm of ['linf', 'l2'] as const) {
    for (let r = 0; r < n; r++) {
      const z = model.z(x, r);
      const y = labels[r];
      let minimal = Infinity;
      for (let t = 0; t < k; t++) {
        if (t === y) continue;
        let dual = 0;
        for (let i = 0; i < d; i++) {
          const v = model.W2[y * d + i] - model.W2[t * d + i];
          dual = norm === 'linf' ? dual + Math.abs(v) : dual + v * v;
        }
        minimal = Math.min(minimal, (z[y] - z[t]) / (norm === 'linf' ? dual : Math.sqrt(dual)));
      }
      const x1 = x.slice(r * d, (r + 1) * d);
      const y1 = labels.slice(r, r + 1);
      const above = await fabT(model, x1, y1, { norm, eps: 1.01 * minimal, range }, new Rng(1));
      assert.equal(above.fooled[0], 1, `${norm} sample ${r}: not fooled at 1.01 × the minimal distance ${minimal}`);
      const found = norm === 'linf' ? above.linf[0] : above.l2[0];
      assert.ok(found >= minimal * (1 - 1e-5) && found <= 1.01 * minimal, `${norm} sample ${r}: ${found} vs minimal ${minimal}`);
      const below = await fabT(model, x1, y1, { norm, eps: 0.99 * minimal, range }, new Rng(1));
      assert.equal(below.fooled[0], 0, `${norm} sample ${r}: fooled below the minimal distance`);
    }
  }
});

test('the logit-difference gradient is ∇(z_t − z_y) exactly, also where y is not the prediction (fallbacks)', async () => {
  const d = 12,
    k = 4;
  const model = JsNet.random(d, k, 0, 3);
  const rng = new Rng(4);
  const m = 60;
  const xs = rng.uniform(new Float32Array(m * d), -2, 2);
  const y = new Int32Array(m),
    t = new Int32Array(m);
  for (let r = 0; r < m; r++) {
    y[r] = rng.int(k);
    t[r] = (y[r] + 1 + rng.int(k - 1)) % k;
  }
  const gradient = model.lossGradient.bind(model);
  const res = await logitDifferenceGradient(gradient, xs, m, y, t, k, true);
  let predictedY = 0;
  for (let r = 0; r < m; r++) {
    const z = model.z(xs, r);
    if (z.indexOf(Math.max(...z)) === y[r]) predictedY++;
    assert.ok(Math.abs(res.diff[r] - (z[t[r]] - z[y[r]])) < 1e-5);
    assert.equal(res.valid[r], 1);
    for (let i = 0; i < d; i++) {
      const exact = model.W2[t[r] * d + i] - model.W2[y[r] * d + i];
      assert.ok(Math.abs(res.grad[r * d + i] - exact) < 1e-5, `row ${r}: ${res.grad[r * d + i]} vs ${exact}`);
    }
  }
  assert.ok(predictedY > 5 && predictedY < m - 5, 'both cases occur');
  // Without the fallback, exactly the rows where y does not lead the logits without t are invalid.
  const bare = await logitDifferenceGradient(gradient, xs, m, y, t, k, false);
  for (let r = 0; r < m; r++) {
    const z = Array.from(model.z(xs, r));
    const others = z.map((v, j) => (j === t[r] ? -Infinity : v));
    assert.equal(bare.valid[r], others.indexOf(Math.max(...others)) === y[r] ? 1 : 0);
  }
});

test('FAB-T results do not depend on the batch size, stay in the eps-ball and the range, and honour cancellation', async () => {
  const d = 20,
    k = 6,
    n = 24;
  const model = JsNet.random(d, k, 16, 8);
  const { x, labels } = inputs(model, n, 9, 0.1, 0.9);
  labels[0] = (labels[0] + 1) % k; // misclassified clean: fooled at once with the clean input
  for (const [norm, eps] of [
    ['linf', 0.08],
    ['l2', 0.3],
  ] as const) {
    const options = { norm, eps, restarts: 2, steps: 30 };
    const whole = await fabT(model, x, labels, options, new Rng(7));
    checkThreatModel(whole, model, x, labels, norm, eps);
    const fooled = whole.fooled.reduce((a, b) => a + b, 0);
    assert.ok(fooled > 2 && fooled < n - 2, `${norm}: a partial success (${fooled}/${n}) makes the comparison meaningful`);
    assert.equal(whole.fooled[0], 1);
    assert.equal(whole.linf[0], 0);
    // Batches of 5 with the samples' ids: the same per-sample streams, so the same results.
    const parts: AttackOutcome[] = [];
    for (let s = 0; s < n; s += 5) {
      const e = Math.min(n, s + 5);
      parts.push(
        await fabT(
          model,
          x.slice(s * d, e * d),
          labels.slice(s, e),
          { ...options, sampleIds: Int32Array.from({ length: e - s }, (_, i) => s + i) },
          new Rng(7),
        ),
      );
    }
    const join = <T extends Float32Array | Float64Array | Int32Array | Uint8Array>(pick: (r: AttackOutcome) => T) => parts.flatMap((p) => Array.from(pick(p)));
    assert.deepEqual(
      join((r) => r.x),
      Array.from(whole.x),
      `${norm}: adversarial inputs`,
    );
    assert.deepEqual(
      join((r) => r.fooled),
      Array.from(whole.fooled),
    );
    assert.deepEqual(
      join((r) => r.predictions),
      Array.from(whole.predictions),
    );
    assert.deepEqual(
      join((r) => r.gradientEvaluations),
      Array.from(whole.gradientEvaluations),
    );
    assert.deepEqual(
      join((r) => r.queries),
      Array.from(whole.queries),
    );
    // Another seed changes the random restarts, not the threat model.
    checkThreatModel(await fabT(model, x, labels, options, new Rng(8)), model, x, labels, norm, eps);
  }
  // A range other than [0, 1].
  const shifted = Float32Array.from(x, (v) => 4 * v - 2);
  const shiftedLabels = Int32Array.from({ length: n }, (_, r) => {
    const z = model.z(shifted, r);
    return z.indexOf(Math.max(...z));
  });
  checkThreatModel(
    await fabT(model, shifted, shiftedLabels, { norm: 'linf', eps: 0.3, range: [-2, 2], restarts: 2, steps: 20 }),
    model,
    shifted,
    shiftedLabels,
    'linf',
    0.3,
    [-2, 2],
  );
  // Cancellation between iterations.
  const controller = new AbortController();
  let calls = 0;
  const counting: Classifier = {
    numClasses: k,
    sampleDims: [d],
    logits: (xx, nn) => model.logits(xx, nn),
    lossGradient: async (xx, nn, ll, loss) => {
      if (++calls === 5) controller.abort();
      return model.lossGradient(xx, nn, ll, loss);
    },
  };
  await assert.rejects(fabT(counting, x, labels, { norm: 'linf', eps: 0.01, signal: controller.signal }), (e: unknown) => e instanceof CancelledError);
  // eps 0: only the samples misclassified clean are fooled, nothing is spent on the others.
  const zero = await fabT(model, x, labels, { norm: 'linf', eps: 0 });
  assert.deepEqual(
    Array.from(zero.fooled),
    Array.from(labels, (_, r) => (r === 0 ? 1 : 0)),
  );
  assert.ok(zero.gradientEvaluations.every((g) => g === 0));
  // The registry entry.
  assert.equal(FAB_T.name, 'fab-t');
  assert.deepEqual(FAB_T.defaults, { steps: 100, restarts: 1, targetClasses: 9, alphaMax: 0.1, eta: 1.05, beta: 0.9 });
  assert.deepEqual(FAB_T.uses, ['steps', 'restarts']);
  assert.equal(FAB_T.gradientFree, false);
});

interface FabRun {
  norm: Norm;
  eps: number;
  accuracy: number;
  robust: number[];
}
const ref = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'fab-reference.json'), 'utf8')) as {
  count: number;
  steps: number;
  targetClasses: number;
  runs: FabRun[];
};

test('FAB-T robust accuracy on the demo model (100 images; L∞ eps 0.03, L2 eps 1.0) is within 2 points of PyTorch', async () => {
  const threads = 1;
  const m = await openClassifier(DEMO_MODEL, { ep: 'cpu', threads });
  const c = onnxClassifier(m, { ep: 'cpu', threads });
  try {
    assert.equal(ref.count, 100);
    const { x, labels } = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, ref.count);
    for (const [norm, eps] of [
      ['linf', 0.03],
      ['l2', 1.0],
    ] as const) {
      const run = ref.runs.find((r) => r.norm === norm && r.eps === eps)!;
      const res = await fabT(c, x, labels, { norm, eps, steps: ref.steps, targetClasses: ref.targetClasses, restarts: 1 }, new Rng(0));
      checkThreatModel(res, c, x, labels, norm, eps);
      const robust = Array.from(res.predictions, (p, i) => (p === labels[i] ? 1 : 0));
      const accuracy = robust.reduce((a: number, b) => a + b, 0) / ref.count;
      const disagree = robust.filter((v, i) => v !== run.robust[i]).length;
      // The fixture's accuracy is a float32 mean.
      assert.ok(
        Math.abs(accuracy - run.accuracy) <= 0.02 + 1e-6,
        `${norm}: robust accuracy ${accuracy} vs PyTorch ${run.accuracy} (${disagree} samples disagree)`,
      );
      assert.ok(disagree <= 3, `${norm}: ${disagree} samples disagree with PyTorch`);
    }
  } finally {
    await c.release();
    await m.session.release();
  }
});
