import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../src/core/errors';
import { Rng } from '../../src/core/random';

const draw = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.next());

test('same seed gives the same sequence, different seeds differ', () => {
  assert.deepEqual(draw(new Rng(42), 1000), draw(new Rng(42), 1000));
  assert.notDeepEqual(draw(new Rng(42), 10), draw(new Rng(43), 10));
  assert.notDeepEqual(draw(new Rng(0), 10), draw(new Rng(1), 10));
  const a = new Rng(7);
  const b = new Rng(7);
  for (let i = 0; i < 100; i++) {
    assert.equal(a.normal(), b.normal());
    assert.equal(a.int(10), b.int(10));
    assert.equal(a.sign(), b.sign());
  }
});

test('uniform: values in [0, 1), mean 1/2 and variance 1/12', () => {
  const rng = new Rng(1);
  const n = 100_000;
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    sq += u * u;
  }
  const mean = sum / n;
  assert.ok(Math.abs(mean - 0.5) < 0.005, `mean ${mean}`);
  assert.ok(Math.abs(sq / n - mean * mean - 1 / 12) < 0.002);

  const arr = rng.uniform(new Float64Array(n), -2, 3);
  const m = arr.reduce((s, v) => s + v, 0) / n;
  assert.ok(arr.every((v) => v >= -2 && v < 3));
  assert.ok(Math.abs(m - 0.5) < 0.03, `uniform(-2, 3) mean ${m}`);
});

test('normal: mean 0, variance 1, and a plausible tail', () => {
  const rng = new Rng(2);
  const n = 100_000;
  const z = rng.normals(new Float64Array(n));
  const mean = z.reduce((s, v) => s + v, 0) / n;
  const variance = z.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  const beyond2 = z.filter((v) => Math.abs(v) > 2).length / n; // 4.55 % for N(0, 1)
  assert.ok(Math.abs(mean) < 0.015, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.02, `variance ${variance}`);
  assert.ok(Math.abs(beyond2 - 0.0455) < 0.005, `P(|z| > 2) = ${beyond2}`);
});

test('int, sign and signs are unbiased', () => {
  const rng = new Rng(3);
  const counts = new Array(5).fill(0);
  for (let i = 0; i < 50_000; i++) counts[rng.int(5)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 400, `counts ${counts}`);
  let s = 0;
  for (let i = 0; i < 50_000; i++) s += rng.sign();
  assert.ok(Math.abs(s) < 1000);
  const v = rng.signs(new Float32Array(50_001));
  assert.ok(v.every((x) => x === 1 || x === -1));
  assert.ok(Math.abs(v.reduce((a, b) => a + b, 0)) < 1000);
  assert.throws(() => rng.int(0), RangeError);
});

test('fork: deterministic, independent of draws made before, distinct per label', () => {
  const a = new Rng(5);
  const b = new Rng(5);
  draw(b, 17); // draws on the parent do not change its forks
  assert.deepEqual(draw(a.fork('pgd:3'), 20), draw(b.fork('pgd:3'), 20));
  assert.deepEqual(draw(a.fork(3), 5), draw(a.fork('3'), 5));
  assert.notDeepEqual(draw(a.fork(3), 5), draw(a.fork(4), 5));
  assert.notDeepEqual(draw(a.fork('x'), 5), draw(new Rng(6).fork('x'), 5));
  assert.notDeepEqual(draw(a.fork('x'), 5), draw(a, 5));
  assert.deepEqual(draw(a.fork('x').fork(1), 5), draw(b.fork('x').fork(1), 5));
  // Neighbouring sample streams are uncorrelated.
  const n = 20_000;
  let cov = 0;
  for (let i = 0; i < n; i++) cov += (a.fork(i).next() - 0.5) * (a.fork(i + 1).next() - 0.5);
  assert.ok(Math.abs(cov / n) < 0.005, `covariance ${cov / n}`);
});

test('an invalid seed is a UserError', () => {
  assert.throws(() => new Rng(Number.NaN), UserError);
  assert.throws(() => new Rng(1.5), UserError);
  assert.deepEqual(draw(new Rng(2 ** 32 + 9), 3), draw(new Rng(9), 3));
});
