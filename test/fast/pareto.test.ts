/**
 * The Pareto front of the layer sweep on hand-made points (expected fronts worked out by hand),
 * and the sweep's table and chart data on a hand-made RunResult section.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { paretoFront } from '../../src/core/eval/stages/pareto';
import type { RunResult, SweepLayer } from '../../src/protocol/run-result';
import { axisRange, frontLine, sweepChart, sweepTable } from '../../src/report/sweep';

test('Pareto front of (clean, robust) points, maximising both', () => {
  // A: (0.90, 0.10)  B: (0.80, 0.30)  C: (0.70, 0.25) dominated by B  D: (0.60, 0.50)  E: (0.85, 0.05) dominated by A
  assert.deepEqual(
    paretoFront([
      [0.9, 0.1],
      [0.8, 0.3],
      [0.7, 0.25],
      [0.6, 0.5],
      [0.85, 0.05],
    ]),
    [true, true, false, true, false],
  );
  // Equal points do not dominate each other; a point equal in one coordinate and worse in the other is dominated.
  assert.deepEqual(
    paretoFront([
      [0.5, 0.5],
      [0.5, 0.5],
      [0.5, 0.4],
    ]),
    [true, true, false],
  );
  // One coordinate: the maxima.
  assert.deepEqual(paretoFront([[0.2], [0.7], [0.7], [0.1]]), [false, true, true, false]);
  // NaN is never on the front and dominates nothing.
  assert.deepEqual(
    paretoFront([
      [NaN, 1],
      [0.1, 0.1],
    ]),
    [false, true],
  );
  assert.deepEqual(paretoFront([]), []);
  // Three coordinates.
  assert.deepEqual(
    paretoFront([
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
      [0, 0, 0.5],
    ]),
    [true, true, true, false],
  );
});

test('axis ranges cover the values on 5-point steps, at least 10 points wide, within [0, 1]', () => {
  assert.deepEqual(axisRange([0.62, 0.71]), [0.6, 0.75]);
  assert.deepEqual(axisRange([0.6, 0.7]), [0.55, 0.75]);
  assert.deepEqual(axisRange([0.99]), [0.9, 1]);
  assert.deepEqual(axisRange([0]), [0, 0.1]);
  assert.deepEqual(axisRange([]), [0, 1]);
});

function layer(tensor: string, depth: number, clean: number, worst: number, pareto: boolean): SweepLayer {
  return {
    tensor,
    layer: tensor,
    op: 'Relu',
    depth,
    cleanAccuracy: clean,
    projectionRate: 0.5,
    worstCase: [{ eps: 0.1, norm: 'linf', accuracy: worst, attack: 'pgd', threat: 'adaptive', broken: false, baselineAccuracy: 0.01 }],
    verdict: 'holds',
    isometry: { withinPearson: 0.5, withinSpearman: 0.5, withinDistortion: 0.1, betweenPearson: 0.4 },
    placement: 'before-tail',
    threats: {},
    fitSeconds: 1.25,
    cached: depth === 2,
    seconds: 3,
    attacks: [],
    checks: [],
    pareto,
    paretoEps: pareto ? [0.1] : [],
  };
}

test('sweep table and chart data from a hand-made section', () => {
  const r = {
    clean: { accuracy: 0.9, correct: 90, count: 100, confusion: [] },
    worstCase: [{ eps: 0.1, norm: 'linf', accuracy: 0.01, attack: 'pgd', threat: 'whitebox', broken: false }],
    sweep: {
      kind: 'lesci',
      params: {},
      reference: { path: 'r', count: 1000, sha256: '' },
      requested: 'all',
      paretoAt: { norm: 'linf', eps: 0.1 },
      isometryPairs: 100,
      layers: [layer('a', 1, 0.6, 0.5, true), layer('b', 2, 0.7, 0.3, false), layer('c', 3, 0.8, 0.4, true)],
      seconds: 1,
    },
  } as unknown as RunResult;
  const t = sweepTable(r)!;
  assert.deepEqual(t.columns, ['depth', 'layer', 'clean', 'projection', 'worst eps 0.1', 'within r', 'verdict', 'fit', 'Pareto']);
  assert.deepEqual(t.rows[0], ['0', '(no defense)', '90.00%', '–', '1.00%', '–', '–', '–', '']);
  assert.deepEqual(t.rows[1], ['1', 'a', '60.00%', '50.0%', '50.00%', '0.500', 'holds', '1.3 s', '✓']);
  assert.deepEqual(t.rows[2].slice(-2), ['cached', '']);
  const c = sweepChart(r)!;
  assert.deepEqual(c.baseline, { clean: 0.9, robust: 0.01 });
  assert.deepEqual(
    frontLine(c.points).map((p) => p.tensor),
    ['c', 'a'],
  );
  // Files from other versions: no section, or a malformed one, gives nothing rather than an error.
  assert.equal(sweepTable({ clean: { accuracy: 1 } } as unknown as RunResult), undefined);
  assert.equal(sweepTable({ sweep: { layers: 'x' } } as unknown as RunResult), undefined);
  assert.equal(sweepChart({ sweep: { layers: [null, { tensor: 1 }] } } as unknown as RunResult), undefined);
});
