// Epsilons as people write them: decimals and fractions (8/255), and the input-range check.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { largestUsefulEps, parseEpsList, parseEpsValue } from '../../src/protocol/eps';

test('decimals and fractions of the pixel range', () => {
  assert.equal(parseEpsValue('0.03'), 0.03);
  assert.equal(parseEpsValue('8/255'), 8 / 255);
  assert.equal(parseEpsValue(' 2 / 255 '), 2 / 255);
  assert.equal(parseEpsValue('.5'), 0.5);
  assert.equal(parseEpsValue('1e-2'), 0.01);
  for (const bad of ['-0.1', 'abc', '8/0', '1/2/3', '', 'NaN', 'Infinity']) assert.equal(parseEpsValue(bad), undefined, bad);
  assert.deepEqual(parseEpsList('0.01, 8/255 0.05'), { values: [0.01, 8 / 255, 0.05] });
});

test('the input range: L∞ up to 1, L2 up to √d; problems say which value and why', () => {
  assert.equal(largestUsefulEps({ norm: 'linf' }), 1);
  assert.equal(largestUsefulEps({ norm: 'l2', sampleSize: 784 }), 28);
  assert.equal(largestUsefulEps({ norm: 'l2' }), undefined);
  assert.deepEqual(parseEpsList('0.05, 1', { norm: 'linf' }), { values: [0.05, 1] });
  const linf = parseEpsList('0.05, 1.5', { norm: 'linf' });
  assert.ok('problem' in linf && /'1\.5' is larger than the input range \(1\)/.test(linf.problem), JSON.stringify(linf));
  const l2 = parseEpsList('2, 30', { norm: 'l2', sampleSize: 784 });
  assert.ok('problem' in l2 && /'30'.*√d = 28\.00/.test(l2.problem), JSON.stringify(l2));
  assert.deepEqual(parseEpsList('30', { norm: 'l2' }), { values: [30] }, 'no bound without the sample size');
  const bad = parseEpsList('0.1, x');
  assert.ok('problem' in bad && bad.problem.includes("'x'"));
  assert.ok('problem' in parseEpsList('  '));
});

test('empty items are refused, with their position', () => {
  const r = parseEpsList('0.1,');
  assert.ok('problem' in r && r.problem === "'0.1,': item 2 is empty.", JSON.stringify(r));
});
