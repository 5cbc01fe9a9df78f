// The per-sample union worst case against a hand computation on small per-sample outcomes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unionWorstCases } from '../../src/core/eval/worst-case';
import { decodeBits, encodeBits } from '../../src/protocol/bitset';
import type { AttackResult } from '../../src/protocol/run-result';

function entry(attack: string, threat: string, eps: number, robust: number[]): AttackResult {
  const accuracy = robust.reduce((a, b) => a + b, 0) / robust.length;
  return {
    target: 'defended',
    attack,
    threat,
    norm: 'linf',
    eps,
    accuracy,
    successRate: 0,
    meanPerturbation: 0,
    maxPerturbation: 0,
    gradientEvaluations: 0,
    queries: 0,
    seconds: 0,
    params: {},
    robust: encodeBits(robust),
  };
}

test('bitsets round-trip for lengths around byte boundaries', () => {
  for (const n of [0, 1, 7, 8, 9, 16, 17, 100]) {
    const flags = Array.from({ length: n }, (_, i) => ((i * 7919) % 3 === 0 ? 1 : 0));
    assert.deepEqual([...decodeBits(encodeBits(flags), n)], flags);
  }
  assert.throws(() => decodeBits(encodeBits([1, 0, 1]), 9), RangeError);
});

test('union worst case: robust only if every attack failed; credit to the first attack that broke a sample', () => {
  // 6 samples; sample 5 is misclassified clean. Attack A breaks 0 and 1, B breaks 1 and 2, C breaks 3.
  const clean = Uint8Array.from([1, 1, 1, 1, 1, 0]);
  const a = entry('pgd', 'transfer', 0.1, [0, 0, 1, 1, 1, 0]);
  const b = entry('pgd', 'bpda', 0.1, [1, 0, 0, 1, 1, 0]);
  const c = entry('square', 'gradient-free', 0.1, [1, 1, 1, 0, 1, 0]);
  const other = entry('pgd', 'transfer', 0.2, [0, 0, 0, 0, 0, 0]);
  const baseline = [{ eps: 0.1, norm: 'linf' as const, accuracy: 0.3, attack: 'pgd', threat: 'whitebox', broken: false }];
  const [w1, w2] = unionWorstCases([a, b, c, other], clean, baseline);
  // Hand computation: only sample 4 survives all three: 1/6. The best single attack leaves 3/6.
  assert.equal(w1.eps, 0.1);
  assert.equal(w1.accuracy, 1 / 6);
  assert.equal(w1.method, 'per-sample-union');
  assert.equal(w1.singleAccuracy, 3 / 6);
  assert.deepEqual(
    w1.firstBroken!.map((f) => [f.attack, f.threat, f.count]).sort(),
    [
      ['clean', '', 1],
      ['pgd', 'bpda', 1],
      ['pgd', 'transfer', 2],
      ['square', 'gradient-free', 1],
    ].sort(),
  );
  // 1/6 is lower than the baseline's 0.3: broken.
  assert.equal(w1.baselineAccuracy, 0.3);
  assert.equal(w1.broken, true);
  assert.equal(w2.eps, 0.2);
  assert.equal(w2.accuracy, 0);
  assert.equal(w2.baselineAccuracy, undefined);
  assert.equal(w2.broken, false);
});

test('results without per-sample outcomes fall back to the strongest single attack, and say so', () => {
  const clean = Uint8Array.from([1, 1, 1, 1]);
  const a = { ...entry('fgsm', 'transfer', 0.1, [1, 1, 0, 0]), robust: undefined };
  const b = entry('pgd', 'bpda', 0.1, [1, 0, 1, 1]);
  const [w] = unionWorstCases([a, b], clean);
  assert.equal(w.method, 'strongest-single');
  assert.equal(w.accuracy, 0.5);
  assert.equal(w.attack, 'fgsm');
});
