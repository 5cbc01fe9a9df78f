import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ATTACK_DEFAULTS,
  ATTACK_FUNCTIONS,
  ATTACK_NAMES,
  ATTACKS,
  fgsm,
  imageLayout,
  parseAttackList,
  runAttack,
  spsa,
  squareAttack,
  squareSchedule,
} from '../../src/core/attacks';
import type { AttackConfig, AttackDataset, Classifier, LossKind, Norm } from '../../src/core/attacks';
import { CancelledError } from '../../src/core/cancel';
import { UserError } from '../../src/core/errors';
import { Rng } from '../../src/core/random';

/**
 * Multinomial logistic regression z = W x + b, with its exact input gradients:
 * CE: ∇ₓ = Wᵀ (softmax(z) − onehot(y));  CW: ∇ₓ (max_{j≠y} z_j − z_y) = W_{j*} − W_y.
 */
class LinearModel implements Classifier {
  readonly numClasses: number;
  forwardRows = 0;
  gradientCalls = 0;
  gradientRows = 0;
  onGradient?: () => void;

  constructor(
    readonly W: Float64Array, // k × d, row-major
    readonly b: Float64Array,
    readonly sampleDims: readonly number[],
  ) {
    this.numClasses = b.length;
  }

  get d(): number {
    return this.W.length / this.numClasses;
  }

  z(x: Float32Array, row: number): Float64Array {
    const { d, numClasses: k } = this;
    const z = Float64Array.from(this.b);
    for (let j = 0; j < k; j++) for (let i = 0; i < d; i++) z[j] += this.W[j * d + i] * x[row * d + i];
    return z;
  }

  /** Hand computation of ∇ₓ CE(z, y) for one sample. */
  ceGradient(x: Float32Array, row: number, y: number): Float64Array {
    const z = this.z(x, row);
    const mx = Math.max(...z);
    const e = z.map((v) => Math.exp(v - mx));
    const s = e.reduce((a, c) => a + c, 0);
    const g = new Float64Array(this.d);
    for (let j = 0; j < this.numClasses; j++) {
      const coef = e[j] / s - (j === y ? 1 : 0);
      for (let i = 0; i < this.d; i++) g[i] += coef * this.W[j * this.d + i];
    }
    return g;
  }

  async logits(x: Float32Array, n: number): Promise<Float32Array> {
    this.forwardRows += n;
    const out = new Float32Array(n * this.numClasses);
    for (let r = 0; r < n; r++) out.set(this.z(x, r), r * this.numClasses);
    return out;
  }

  async lossGradient(x: Float32Array, n: number, labels: Int32Array, loss: LossKind) {
    this.gradientCalls++;
    this.gradientRows += n;
    this.onGradient?.();
    const { d, numClasses: k } = this;
    const grad = new Float32Array(n * d);
    const logits = new Float32Array(n * k);
    for (let r = 0; r < n; r++) {
      const y = labels[r];
      const z = this.z(x, r);
      logits.set(z, r * k);
      let g: Float64Array;
      if (loss === 'cw') {
        let jStar = -1;
        for (let j = 0; j < k; j++) if (j !== y && (jStar < 0 || z[j] > z[jStar])) jStar = j;
        g = new Float64Array(d);
        for (let i = 0; i < d; i++) g[i] = this.W[jStar * d + i] - this.W[y * d + i];
      } else {
        g = this.ceGradient(x, r, y);
      }
      const scale = loss === 'ce-mean' ? 1 / n : 1;
      for (let i = 0; i < d; i++) grad[r * d + i] = g[i] * scale;
    }
    return { grad, logits };
  }
}

/** The same model seen through logits only (a gradient-free attack must not need more). */
function blackBox(model: LinearModel): Classifier {
  return { numClasses: model.numClasses, sampleDims: model.sampleDims, logits: (x, n) => model.logits(x, n) };
}

const D = 16;
const K = 3;

/** A random 16-dim, 3-class model and n inputs in [0, 1] labelled with its own predictions (all correct clean). */
function setup(n = 40, seed = 123, bias = [0, 0, 0]) {
  const rng = new Rng(seed);
  const model = new LinearModel(rng.normals(new Float64Array(K * D)), Float64Array.from(bias), [1, 4, 4]);
  const x = rng.uniform(new Float32Array(n * D));
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const z = model.z(x, r);
    labels[r] = z.indexOf(Math.max(...z));
  }
  const dataset: AttackDataset = { x, labels, count: n };
  return { model, x, labels, dataset, n };
}

const norms = (a: Float32Array, b: Float32Array, r: number) => {
  let linf = 0;
  let sq = 0;
  for (let i = r * D; i < (r + 1) * D; i++) {
    linf = Math.max(linf, Math.abs(a[i] - b[i]));
    sq += (a[i] - b[i]) ** 2;
  }
  return { linf, l2: Math.sqrt(sq) };
};
const clip01 = (v: number) => Math.min(1, Math.max(0, v));

test('FGSM matches the hand computation x + eps·sign(Wᵀ(p − onehot)) (linf) and x + eps·g/‖g‖ (l2)', async () => {
  const { model, x, labels, n } = setup(20);
  const targets = Int32Array.from(labels, (y) => (y + 1) % K);
  for (const norm of ['linf', 'l2'] as const) {
    for (const targeted of [false, true]) {
      const eps = norm === 'linf' ? 0.05 : 0.3;
      const res = await fgsm(model, x, labels, { norm, eps, targets: targeted ? targets : undefined });
      for (let r = 0; r < n; r++) {
        // Untargeted: ascend CE at y. Targeted: descend CE at the target.
        const g = model.ceGradient(x, r, targeted ? targets[r] : labels[r]).map((v) => (targeted ? -v : v));
        const gNorm = Math.hypot(...g);
        for (let i = 0; i < D; i++) {
          const step = norm === 'linf' ? eps * Math.sign(g[i]) : (eps * g[i]) / gNorm;
          const expected = clip01(x[r * D + i] + step);
          assert.ok(Math.abs(res.x[r * D + i] - expected) < 1e-6, `${norm} sample ${r} feature ${i}`);
        }
        const z = model.z(res.x, r);
        assert.equal(res.predictions[r], z.indexOf(Math.max(...z)));
        assert.equal(res.fooled[r], targeted ? +(res.predictions[r] === targets[r]) : +(res.predictions[r] !== labels[r]));
        assert.equal(res.gradientEvaluations[r], 1);
      }
    }
  }
});

test('every attack stays in the eps-ball and the input range, and reports the norms it used', async () => {
  const { model, x, labels, n } = setup(12);
  const targets = Int32Array.from(labels, (y) => (y + 2) % K);
  for (const attack of ATTACK_NAMES.filter((a) => (ATTACKS[a].minClasses ?? 2) <= K)) {
    const targetable = (ATTACKS[attack].uses as readonly string[]).includes('targeted');
    for (const norm of ['linf', 'l2'] as const) {
      for (const targeted of targetable ? [false, true] : [false]) {
        const eps = norm === 'linf' ? 0.15 : 0.6;
        const res = await ATTACK_FUNCTIONS[attack](
          ATTACKS[attack].gradientFree ? blackBox(model) : model,
          x,
          labels,
          { norm, eps, targets: targeted ? targets : undefined, queries: 300, steps: 8, restarts: 2 },
          new Rng(9),
        );
        for (let r = 0; r < n; r++) {
          const actual = norms(res.x, x, r);
          const label = `${attack} ${norm} ${targeted ? 'targeted' : ''} sample ${r}`;
          assert.ok(actual[norm] <= eps + 1e-6, `${label}: ${actual[norm]} > ${eps}`);
          assert.ok(Math.abs(actual.linf - res.linf[r]) < 1e-9 && Math.abs(actual.l2 - res.l2[r]) < 1e-9, label);
          for (let i = r * D; i < (r + 1) * D; i++) assert.ok(res.x[i] >= 0 && res.x[i] <= 1, label);
          const z = model.z(res.x, r);
          assert.equal(res.predictions[r], z.indexOf(Math.max(...z)), label);
        }
      }
    }
  }
});

test('BIM, PGD and MI-FGSM fool at least as many samples as FGSM at the same eps and loss', async () => {
  // A note on what holds: BIM starts at x and its first step points like FGSM's, so it does at
  // least as well. A single PGD run starts at a random point and converges to the maximiser of the
  // CE surrogate, which is not always misclassified where FGSM's corner is (one sample in 60 here);
  // restarts cover that. MI-FGSM's steps of eps/T lose l2 length to clipping, so it is compared in linf.
  for (const seed of [123, 7]) {
    const { model, dataset } = setup(60, seed);
    for (const norm of ['linf', 'l2'] as const) {
      const eps = norm === 'linf' ? 0.08 : 0.3;
      for (const loss of ['ce', 'cw'] as const) {
        const run = (attack: AttackConfig['attack'], extra: Partial<AttackConfig> = {}) =>
          runAttack(model, dataset, { attack, norm, eps, loss, ...extra }, { batchSize: 16, seed: 1 });
        const base = await run('fgsm');
        assert.ok(base.successRate > 0 && base.successRate < 1, `FGSM ${norm} ${loss} success ${base.successRate} should be partial`);
        const runs: [AttackConfig['attack'], Partial<AttackConfig>][] = [
          ['bim', {}],
          ['pgd', { restarts: 3 }],
        ];
        if (norm === 'linf') runs.push(['mifgsm', {}]);
        for (const [attack, extra] of runs) {
          const m = await run(attack, extra);
          const label = `${attack} ${JSON.stringify(extra)} ${norm} ${loss} model ${seed}`;
          assert.ok(m.successRate >= base.successRate, `${label}: ${m.successRate} < FGSM ${base.successRate}`);
          assert.ok(m.maxPerturbation <= eps + 1e-6, label);
          assert.ok(m.gradientEvaluations > 0 && m.gradientEvaluations <= 60 * ATTACK_DEFAULTS.pgd.steps * 3, label);
        }
      }
    }
  }
});

test('targeted attacks move towards given targets; random targets are seeded and never the true label', async () => {
  const { model, dataset, x, labels, n } = setup(30);
  const targets = Int32Array.from(labels, (y) => (y + 1) % K);
  const targetMargin = (z: Float64Array, t: number) => z[t] - Math.max(...z.filter((_, j) => j !== t));
  for (const attack of ATTACK_NAMES.filter((a) => (ATTACKS[a].uses as readonly string[]).includes('targeted'))) {
    const classifier = ATTACKS[attack].gradientFree ? blackBox(model) : model;
    const config: AttackConfig = { attack, norm: 'linf', eps: 0.3, targeted: { labels: targets }, queries: 1500 };
    const m = await runAttack(classifier, dataset, config, { batchSize: 8, seed: 4, keepExamples: n });
    assert.ok(m.targeted);
    let hits = 0;
    for (let r = 0; r < n; r++) {
      const before = targetMargin(model.z(x, r), targets[r]);
      const after = targetMargin(model.z(m.adversarialExamples!, r), targets[r]);
      assert.ok(after > before, `${attack} sample ${r}: target margin ${before} → ${after}`);
      if (m.predictions[r] === targets[r]) hits++;
    }
    assert.equal(m.successRate, hits / n, attack);
    assert.ok(m.successRate >= 0.5, `${attack}: targeted success ${m.successRate}`);
  }

  const random = (seed: number) => runAttack(model, dataset, { attack: 'pgd', norm: 'linf', eps: 0.3, targeted: 'random' }, { batchSize: 8, seed });
  const [a, b, c] = await Promise.all([random(1), random(1), random(2)]);
  assert.ok(a.targets && a.targets.every((t, i) => t !== labels[i] && t >= 0 && t < K));
  assert.deepEqual(a.targets, b.targets);
  assert.notDeepEqual(a.targets, c.targets);
  assert.equal(a.successRate, a.targets.filter((t, i) => a.predictions[i] === t).length / n);
});

test('a large-margin linear model is not fooled at a small eps', async () => {
  const { model, dataset, x, labels, n } = setup(20, 7, [30, 0, 0]);
  const eps = 0.02;
  // No linf perturbation of size eps can change z_0 − z_j by more than eps · ‖W_0 − W_j‖₁.
  for (let r = 0; r < n; r++) {
    const z = model.z(x, r);
    assert.equal(labels[r], 0);
    for (let j = 1; j < K; j++) {
      let l1 = 0;
      for (let i = 0; i < D; i++) l1 += Math.abs(model.W[i] - model.W[j * D + i]);
      assert.ok(z[0] - z[j] > eps * l1);
    }
  }
  for (const attack of ATTACK_NAMES.filter((a) => (ATTACKS[a].minClasses ?? 2) <= K)) {
    const m = await runAttack(
      ATTACKS[attack].gradientFree ? blackBox(model) : model,
      dataset,
      { attack, norm: 'linf', eps, queries: 200 },
      { batchSize: 8, seed: 0 },
    );
    assert.equal(m.accuracy, 1, attack);
    assert.equal(m.successRate, 0, attack);
  }
});

test('SPSA and Square Attack fool the linear model from logits alone, within the query budget', async () => {
  const { model, x, labels, n } = setup(30);
  const budget = 1000;
  for (const [name, attack] of [
    ['spsa', spsa],
    ['square', squareAttack],
  ] as const) {
    for (const norm of ['linf', 'l2'] as Norm[]) {
      const eps = norm === 'linf' ? 0.5 : 2.5;
      model.forwardRows = 0;
      const gradientsBefore = model.gradientRows;
      // 8 directions per step (17 queries) leave room for ~60 Adam steps of lr 0.01 in the budget.
      const res = await attack(blackBox(model), x, labels, { norm, eps, queries: budget, samplesPerStep: 8 }, new Rng(3));
      const fooled = res.fooled.reduce((a, b) => a + b, 0);
      assert.ok(fooled >= 0.9 * n, `${name} ${norm}: fooled ${fooled}/${n}`);
      assert.equal(model.gradientRows, gradientsBefore);
      assert.ok(res.gradientEvaluations.every((g) => g === 0));
      assert.ok(
        res.queries.every((q) => q >= 1 && q <= budget),
        `${name} ${norm}: queries ${Math.max(...res.queries)}`,
      );
      // The counts are honest: every forward row the model saw is accounted for.
      assert.equal(
        res.queries.reduce((a, b) => a + b, 0),
        model.forwardRows,
      );
      for (let r = 0; r < n; r++) assert.ok(norms(res.x, x, r)[norm] <= eps + 1e-6);
    }
  }
});

test('Square Attack handles CHW, HWC and flat inputs', async () => {
  assert.deepEqual(imageLayout([3, 8, 6]), { c: 3, h: 8, w: 6, cs: 48, rs: 6, ws: 1 });
  assert.deepEqual(imageLayout([8, 6, 3]), { c: 3, h: 8, w: 6, cs: 1, rs: 18, ws: 3 });
  assert.deepEqual(imageLayout([28, 28]), { c: 1, h: 28, w: 28, cs: 784, rs: 28, ws: 1 });
  assert.deepEqual(imageLayout([10]), { c: 1, h: 1, w: 10, cs: 10, rs: 10, ws: 1 });
  for (const dims of [[3, 8, 8], [8, 8, 3], [192]]) {
    const rng = new Rng(21);
    const d = 192;
    const model = new LinearModel(rng.normals(new Float64Array(K * d), 0, 0.3), new Float64Array(K), dims);
    const n = 10;
    const x = rng.uniform(new Float32Array(n * d));
    const labels = Int32Array.from({ length: n }, (_, r) => {
      const z = model.z(x, r);
      return z.indexOf(Math.max(...z));
    });
    for (const norm of ['linf', 'l2'] as const) {
      const eps = norm === 'linf' ? 0.2 : 3;
      const res = await squareAttack(blackBox(model), x, labels, { norm, eps, queries: 400 }, rng);
      for (let r = 0; r < n; r++) {
        assert.ok((norm === 'linf' ? res.linf[r] : res.l2[r]) <= eps + 1e-6);
        assert.ok(res.queries[r] <= 400);
      }
      assert.ok(res.fooled.reduce((a, b) => a + b, 0) >= 8, `${dims} ${norm}: fooled ${res.fooled}`);
    }
  }
});

test('same seed gives identical results, a different seed can differ, batch size does not matter', async () => {
  const { model, dataset, n } = setup(20);
  for (const attack of ['pgd', 'spsa', 'square'] as const) {
    const classifier = ATTACKS[attack].gradientFree ? blackBox(model) : model;
    const config: AttackConfig = { attack, norm: 'linf', eps: 0.05, queries: 300, steps: 5 };
    const run = (seed: number, batchSize: number) => runAttack(classifier, dataset, config, { batchSize, seed, keepExamples: n });
    const a = await run(11, 6);
    const b = await run(11, 6);
    const c = await run(11, 20);
    const other = await run(12, 6);
    assert.deepEqual(a.adversarialExamples, b.adversarialExamples, attack);
    assert.deepEqual(a.predictions, b.predictions, attack);
    assert.equal(a.queries, b.queries);
    assert.deepEqual(a.adversarialExamples, c.adversarialExamples, `${attack}: batch size changed the result`);
    assert.notDeepEqual(a.adversarialExamples, other.adversarialExamples, attack);
  }
});

test('runAttack bookkeeping on a hand-checkable case', async () => {
  // z_0 = x_0 − 0.5, z_1 = 0.5 − x_0: class 0 iff x_0 > 0.5. FGSM moves x_0 by 0.1 away from the label.
  const model = new LinearModel(Float64Array.from([1, 0, -1, 0]), Float64Array.from([-0.5, 0.5]), [2]);
  const dataset: AttackDataset = {
    x: Float32Array.from([0.9, 0.5, /* robust */ 0.55, 0.5, /* fooled */ 0.2, 0.5, /* robust */ 0.2, 0.5 /* wrong clean */]),
    labels: Int32Array.from([0, 0, 1, 0]),
    count: 4,
  };
  for (const norm of ['linf', 'l2'] as const) {
    const m = await runAttack(model, dataset, { attack: 'fgsm', norm, eps: 0.1 }, { batchSize: 3, seed: 0, keepExamples: 4 });
    assert.equal(m.cleanAccuracy, 0.75);
    assert.equal(m.accuracy, 0.5);
    assert.equal(m.successRate, 1 / 3);
    assert.ok(Math.abs(m.meanPerturbation - 0.1) < 1e-6 && Math.abs(m.maxPerturbation - 0.1) < 1e-6);
    assert.equal(m.gradientEvaluations, 3);
    assert.equal(m.queries, 3);
    assert.deepEqual([...m.predictions], [0, 1, 1, 1]);
    // The second feature has a zero gradient (sign(0) = 0) and the wrong-clean sample is untouched.
    const ex = [...m.adversarialExamples!].map((v) => Math.round(v * 1e6) / 1e6);
    assert.deepEqual(ex, [0.8, 0.5, 0.45, 0.5, 0.3, 0.5, 0.2, 0.5]);
  }
  const zero = await runAttack(model, dataset, { attack: 'pgd', norm: 'linf', eps: 0 }, { batchSize: 4, seed: 0 });
  assert.equal(zero.accuracy, 0.75);
  assert.equal(zero.successRate, 0);
  assert.equal(zero.queries + zero.gradientEvaluations, 0);
  // With 2 classes a random target is the other class, so targeted = untargeted here.
  const t = await runAttack(model, dataset, { attack: 'pgd', norm: 'linf', eps: 0.1, targeted: 'random' }, { batchSize: 4, seed: 0 });
  assert.equal(t.accuracy, 0.5);
  assert.equal(t.successRate, 1 / 3);
});

test('abort stops promptly between batches and between steps', async () => {
  const { model, dataset } = setup(40);
  const isAbort = (e: unknown) => e instanceof CancelledError;

  const pre = new AbortController();
  pre.abort();
  model.forwardRows = 0;
  await assert.rejects(runAttack(model, dataset, { attack: 'fgsm', norm: 'linf', eps: 0.1 }, { batchSize: 8, seed: 0, signal: pre.signal }), isAbort);
  assert.equal(model.forwardRows, 0);

  const between = new AbortController();
  let batches = 0;
  await assert.rejects(
    runAttack(
      model,
      dataset,
      { attack: 'fgsm', norm: 'linf', eps: 0.1 },
      {
        batchSize: 8,
        seed: 0,
        signal: between.signal,
        onProgress: () => {
          batches++;
          between.abort();
        },
      },
    ),
    isAbort,
  );
  assert.equal(batches, 1);

  const within = new AbortController();
  model.gradientCalls = 0;
  model.onGradient = () => {
    if (model.gradientCalls === 3) within.abort();
  };
  const started = performance.now();
  await assert.rejects(
    runAttack(model, dataset, { attack: 'pgd', norm: 'linf', eps: 0.001, steps: 100_000 }, { batchSize: 40, seed: 0, signal: within.signal }),
    isAbort,
  );
  model.onGradient = undefined;
  assert.equal(model.gradientCalls, 3);
  assert.ok(performance.now() - started < 1000);
});

test('parseAttackList validates names; gradient attacks need gradients', async () => {
  assert.deepEqual(parseAttackList('fgsm,pgd,square'), ['fgsm', 'pgd', 'square']);
  assert.deepEqual(parseAttackList(' PGD, i-fgsm  mi-fgsm,pgd '), ['pgd', 'bim', 'mifgsm']);
  assert.throws(
    () => parseAttackList('fgsm,cw'),
    (e: unknown) => e instanceof UserError && /'cw'/.test(e.message) && new RegExp(ATTACK_NAMES.join(', ')).test(e.message),
  );
  assert.throws(() => parseAttackList(' , '), UserError);
  const { model, dataset } = setup(4);
  await assert.rejects(runAttack(blackBox(model), dataset, { attack: 'pgd', norm: 'linf', eps: 0.1 }, { batchSize: 4, seed: 0 }), UserError);
  await assert.rejects(runAttack(model, dataset, { attack: 'fgsm', norm: 'linf', eps: -1 }, { batchSize: 4, seed: 0 }), UserError);
  await assert.rejects(
    runAttack(model, { ...dataset, x: dataset.x.map((v) => v * 2 - 1) }, { attack: 'fgsm', norm: 'linf', eps: 0.1 }, { batchSize: 4, seed: 0 }),
    UserError,
  );
  await assert.rejects(
    runAttack(model, dataset, { attack: 'fgsm', norm: 'linf', eps: 0.1, targeted: { labels: dataset.labels } }, { batchSize: 4, seed: 0 }),
    UserError,
  );
});

test('Square Attack schedule halves p at the paper iterations, rescaled to the budget', () => {
  assert.equal(squareSchedule(0.05, 0, 10000), 0.05);
  assert.equal(squareSchedule(0.05, 10, 10000), 0.05);
  assert.equal(squareSchedule(0.05, 11, 10000), 0.025);
  assert.equal(squareSchedule(0.05, 300, 10000), 0.05 / 8);
  assert.equal(squareSchedule(0.05, 9999, 10000), 0.05 / 512);
  assert.equal(squareSchedule(0.8, 2, 1000), 0.4); // iteration 2 of 1000 ≙ 20 of 10,000
  assert.equal(squareSchedule(0.8, 6, 1000), 0.2); // ≙ 60 of 10,000
});
