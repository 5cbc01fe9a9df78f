// The runs table and the comparison of several runs (src/report/runs-table.ts) on hand-made
// RunResults: rows carry the defended numbers for defended runs, sorting and filtering, the merged
// table's values and Δ against the first run, the data-mismatch warning, and chart series that
// stay distinct for seven runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttackResult, RunResult, WorstCase } from '../../src/protocol/run-result';
import {
  budgetSummary,
  cellText,
  compareRuns,
  comparisonTable,
  dataMismatches,
  deltaText,
  durationText,
  filterRuns,
  overlaySeries,
  RUN_PALETTE,
  runsTableRow,
  sortRuns,
  worstCaseText,
} from '../../src/report/runs-table';

const SHA = 'a'.repeat(64);

function attack(a: Partial<AttackResult> & Pick<AttackResult, 'attack' | 'eps' | 'accuracy'>): AttackResult {
  return {
    target: 'baseline',
    threat: 'whitebox',
    norm: 'linf',
    successRate: 0,
    meanPerturbation: 0,
    maxPerturbation: 0,
    gradientEvaluations: 0,
    queries: 0,
    seconds: 0,
    params: {},
    ...a,
  };
}

function wc(eps: number, accuracy: number, threat = 'whitebox'): WorstCase {
  return { eps, norm: 'linf', accuracy, attack: 'pgd', threat, method: 'per-sample-union', broken: false };
}

function run(o: {
  name?: string;
  model?: string;
  createdAt: string;
  clean: number;
  count?: number;
  sha?: string;
  data?: string;
  attacks?: AttackResult[];
  worstCase?: WorstCase[];
  defense?: { kind: string; clean: number; worstCase: WorstCase[]; verdict: 'holds' | 'broken' | 'partial' | 'inconclusive' };
  strength?: string;
  ep?: 'cpu' | 'cuda';
  seconds?: number;
}): RunResult {
  const count = o.count ?? 100;
  return {
    schemaVersion: 2,
    tool: { name: 'robustness-lab', version: '0.1.0' },
    createdAt: o.createdAt,
    ...(o.name ? { experiment: { name: o.name, file: `/ws/${o.name}.rlab.json` } } : {}),
    model: { path: `/ws/${o.model ?? 'fashion-cnn'}.onnx`, sha256: SHA, input: 'input', output: 'logits', inputShape: ['batch', 1, 28, 28], opset: 13 },
    dataset: {
      format: 'idx',
      path: `/ws/data/${o.data ?? 't10k-images-idx3-ubyte.gz'}`,
      count,
      sha256: o.sha ?? 'd'.repeat(64),
      sampleShape: [1, 28, 28],
      preprocessing: { scale: 1 / 255, layout: 'NCHW' },
    },
    seed: 0,
    runtime: { executionProvider: o.ep ?? 'cpu', requested: 'auto', threads: 2, batchSize: 100 },
    timings: { loadSeconds: 0.1, cleanSeconds: 0.1, totalSeconds: o.seconds ?? 5, cleanImagesPerSecond: 1000 },
    clean: { accuracy: o.clean, correct: Math.round(o.clean * count), count, confusion: [] },
    attackPlan: {
      names: [...new Set((o.attacks ?? []).map((a) => a.attack))],
      eps: [0.05, 0.1],
      norm: 'linf',
      ...(o.strength ? { strength: o.strength } : {}),
    },
    attacks: o.attacks ?? [],
    worstCase: o.worstCase,
    ...(o.defense
      ? {
          defense: {
            kind: o.defense.kind,
            layer: '/features/features.5/MaxPool_output_0',
            placement: 'after-tail',
            scores: 'logits',
            params: {},
            reference: { path: '/ws/data/train.gz', count: 1000, sha256: SHA },
            fitSeconds: 1,
            cached: false,
            clean: { accuracy: o.defense.clean, baselineAccuracy: o.clean, confusion: [] },
            threats: {},
            worstCase: o.defense.worstCase,
            verdict: o.defense.verdict,
          },
        }
      : {}),
  };
}

/** Undefended, FGSM and PGD at 0.05 and 0.1. */
const A = run({
  name: 'plain',
  createdAt: '2026-11-01T10:00:00Z',
  clean: 0.9,
  strength: 'quick',
  seconds: 4.2,
  attacks: [
    attack({ attack: 'fgsm', eps: 0.05, accuracy: 0.4, params: { loss: 'ce' } }),
    attack({ attack: 'fgsm', eps: 0.1, accuracy: 0.2, params: { loss: 'ce' } }),
    attack({ attack: 'pgd', eps: 0.05, accuracy: 0.3, params: { steps: 10, stepSize: 0.005, restarts: 1, loss: 'ce' } }),
    attack({ attack: 'pgd', eps: 0.1, accuracy: 0.05, params: { steps: 10, stepSize: 0.01, restarts: 1, loss: 'ce' } }),
  ],
  worstCase: [wc(0.05, 0.25), wc(0.1, 0.04)],
});

/** Defended with LESCI: the baseline attacked whitebox, the defended model under transfer. */
const B = run({
  name: 'lesci-vote',
  createdAt: '2026-11-02T10:00:00Z',
  clean: 0.9,
  seconds: 125,
  ep: 'cuda',
  attacks: [
    attack({ attack: 'fgsm', eps: 0.05, accuracy: 0.42 }),
    attack({ attack: 'fgsm', eps: 0.05, accuracy: 0.7, target: 'defended', threat: 'transfer' }),
    attack({ attack: 'fgsm', eps: 0.1, accuracy: 0.55, target: 'defended', threat: 'transfer' }),
  ],
  worstCase: [wc(0.05, 0.42)],
  defense: { kind: 'lesci', clean: 0.87, worstCase: [wc(0.05, 0.66, 'transfer'), wc(0.1, 0.5, 'transfer')], verdict: 'holds' },
});

/** Undefended, on fewer samples (another --limit). */
const C = run({
  name: 'plain-small',
  createdAt: '2026-11-03T10:00:00Z',
  clean: 0.95,
  count: 50,
  attacks: [attack({ attack: 'fgsm', eps: 0.05, accuracy: 0.5 })],
  worstCase: [wc(0.05, 0.45)],
});

test('a row holds what ran, and the defended model’s numbers for a defended run', () => {
  const a = runsTableRow({ result: A, file: '/ws/rlab-results/a.json' });
  assert.equal(a.id, '/ws/rlab-results/a.json');
  assert.equal(a.label, 'plain');
  assert.equal(a.model, 'fashion-cnn.onnx');
  assert.equal(a.data, 't10k-images-idx3-ubyte.gz');
  assert.equal(a.samples, 100);
  assert.equal(a.clean, 0.9);
  assert.deepEqual(
    a.worstCase.map((w) => [w.eps, w.accuracy]),
    [
      [0.05, 0.25],
      [0.1, 0.04],
    ],
  );
  assert.equal(a.worst, 0.04);
  assert.equal(a.defense, undefined);
  assert.equal(cellText(a, 'defense'), 'none');
  assert.equal(cellText(a, 'budget'), 'quick · fgsm: ce; pgd: 10 steps of 0.005, 1 restart, ce');
  assert.equal(cellText(a, 'seconds'), '4.2 s');
  assert.equal(cellText(a, 'provider'), 'cpu');

  const b = runsTableRow({ result: B, file: '/ws/rlab-results/b.json' });
  // Defended: clean 87% (not the undefended 90%), worst case from defense.worstCase (not 42%).
  assert.equal(b.clean, 0.87);
  assert.equal(cellText(b, 'clean'), '87.0% (defended)');
  assert.deepEqual(
    b.worstCase.map((w) => w.accuracy),
    [0.66, 0.5],
  );
  assert.equal(cellText(b, 'worst'), 'ε 0.05: 66.0% · ε 0.1: 50.0%');
  assert.equal(b.verdict, 'holds');
  assert.equal(cellText(b, 'defense'), 'lesci @ /features/features.5/MaxPool_output_0');
  assert.equal(cellText(b, 'provider'), 'cuda');
  assert.equal(cellText(b, 'seconds'), '2 min 05 s');
});

test('budgets, durations and worst-case text in a few words', () => {
  assert.equal(budgetSummary(C), 'fgsm');
  assert.equal(durationText(undefined), '–');
  assert.equal(durationText(3725), '1 h 02 min');
  assert.equal(worstCaseText([]), '–');
  assert.equal(
    worstCaseText([
      { norm: 'linf', eps: 0.1, accuracy: 0.5 },
      { norm: 'l2', eps: 0.5, accuracy: 0.25 },
    ]),
    'linf ε 0.1: 50.0% · l2 ε 0.5: 25.0%',
  );
});

test('sorting by a column: numbers as numbers, both directions, missing values last', () => {
  const rows = [A, B, C].map((r, i) => runsTableRow({ result: r, file: `/r/${i}.json` }));
  const ids = (rs: { label: string }[]) => rs.map((r) => r.label);
  assert.deepEqual(ids(sortRuns(rows, 'worst', 'asc')), ['plain', 'plain-small', 'lesci-vote']);
  assert.deepEqual(ids(sortRuns(rows, 'worst', 'desc')), ['lesci-vote', 'plain-small', 'plain']);
  assert.deepEqual(ids(sortRuns(rows, 'clean', 'desc')), ['plain-small', 'plain', 'lesci-vote']);
  assert.deepEqual(ids(sortRuns(rows, 'samples', 'asc')), ['plain-small', 'lesci-vote', 'plain']); // tie at 100: newest first
  assert.deepEqual(ids(sortRuns(rows, 'createdAt', 'desc')), ['plain-small', 'lesci-vote', 'plain']);
  assert.deepEqual(ids(sortRuns(rows, 'label', 'asc')), ['lesci-vote', 'plain', 'plain-small']);
  // Verdict: only B has one; the others come last in either direction.
  assert.equal(sortRuns(rows, 'verdict', 'asc')[0].label, 'lesci-vote');
  assert.equal(sortRuns(rows, 'verdict', 'desc')[0].label, 'lesci-vote');
  // Text sorts naturally: "run 2" before "run 10".
  const named = ['run 10', 'run 2', 'run 1'].map((n, i) => runsTableRow({ result: run({ name: n, createdAt: `2026-11-0${i + 1}T00:00:00Z`, clean: 0.5 }) }, i));
  assert.deepEqual(ids(sortRuns(named, 'label', 'asc')), ['run 1', 'run 2', 'run 10']);
});

test('filtering: every word must appear in some column, case-insensitively', () => {
  const rows = [A, B, C].map((r, i) => runsTableRow({ result: r, file: `/r/${i}.json` }));
  assert.equal(filterRuns(rows, '').length, 3);
  assert.deepEqual(
    filterRuns(rows, 'LESCI').map((r) => r.label),
    ['lesci-vote'],
  );
  assert.deepEqual(
    filterRuns(rows, 'plain').map((r) => r.label),
    ['plain', 'plain-small'],
  );
  assert.deepEqual(
    filterRuns(rows, 'plain quick').map((r) => r.label),
    ['plain'],
  );
  assert.deepEqual(
    filterRuns(rows, 'cuda holds').map((r) => r.label),
    ['lesci-vote'],
  );
  assert.equal(filterRuns(rows, 'lesci broken').length, 0);
});

test('comparison: one row per (attack, threat, norm, eps), a column per run, Δ against the first', () => {
  const c = compareRuns([
    { name: 'plain', result: A },
    { name: 'lesci-vote', result: B },
    { name: 'plain-small', result: C },
  ]);
  const row = (attack: string, threat: string, eps: number) => c.rows.find((r) => r.attack === attack && r.threat === threat && r.eps === eps);
  // Headline rows first: clean (defended clean for B), then the union worst case.
  assert.equal(c.rows[0].attack, 'clean');
  assert.deepEqual(c.rows[0].values, [0.9, 0.87, 0.95]);
  assert.ok(Math.abs(c.rows[0].deltas[1]! - -0.03) < 1e-12);
  const w05 = row('worst case', 'union', 0.05)!;
  assert.deepEqual(w05.values, [0.25, 0.66, 0.45]);
  assert.ok(Math.abs(w05.deltas[1]! - 0.41) < 1e-12);
  assert.ok(Math.abs(w05.deltas[2]! - 0.2) < 1e-12);
  const w10 = row('worst case', 'union', 0.1)!;
  assert.deepEqual(w10.values, [0.04, 0.5, undefined]);
  assert.equal(w10.deltas[2], undefined);
  // Attacks on the undefended model (whitebox) line up across runs, defended ones by threat model.
  assert.deepEqual(row('fgsm', 'whitebox', 0.05)!.values, [0.4, 0.42, 0.5]);
  assert.deepEqual(row('fgsm', 'transfer', 0.05)!.values, [undefined, 0.7, undefined]);
  assert.deepEqual(row('pgd', 'whitebox', 0.1)!.values, [0.05, undefined, undefined]);
  assert.equal(row('fgsm', 'transfer', 0.05)!.deltas[1], undefined, 'no Δ without a baseline value');
  // Within a group, eps ascending.
  const fgsm = c.rows.filter((r) => r.attack === 'fgsm' && r.threat === 'whitebox').map((r) => r.eps);
  assert.deepEqual(fgsm, [0.05, 0.1]);

  const t = comparisonTable(c);
  assert.deepEqual(t.columns, ['attack', 'threat', 'norm', 'eps', '#1 plain', '#2 lesci-vote', 'Δ #2−#1', '#3 plain-small', 'Δ #3−#1']);
  assert.deepEqual(
    t.rows.find((r) => r[0] === 'worst case' && r[3] === '0.05'),
    ['worst case', 'union', 'linf', '0.05', '25.0%', '66.0%', '+41.0 pp', '45.0%', '+20.0 pp'],
  );
  assert.equal(deltaText(-0.03), '−3.0 pp');
  assert.equal(deltaText(0), '0.0 pp');
  assert.equal(deltaText(undefined), '–');
});

test('a warning when the runs used different data or a different sample limit, none when the same', () => {
  assert.deepEqual(
    dataMismatches([
      { name: 'plain', result: A },
      { name: 'lesci-vote', result: B },
    ]),
    [],
  );
  assert.equal(
    compareRuns([
      { name: 'plain', result: A },
      { name: 'lesci-vote', result: B },
    ]).warning,
    undefined,
  );

  const limit = compareRuns([
    { name: 'plain', result: A },
    { name: 'plain-small', result: C },
  ]);
  assert.equal(limit.mismatches.length, 1);
  assert.match(limit.warning!, /not evaluated on the same data/);
  assert.match(limit.warning!, /#2 plain-small evaluated 50 samples, #1 plain 100 \(a different sample limit\)/);

  const other = run({ name: 'mnist', createdAt: '2026-11-04T00:00:00Z', clean: 0.99, sha: 'e'.repeat(64), data: 'mnist-test.gz' });
  const data = dataMismatches([
    { name: 'plain', result: A },
    { name: 'lesci-vote', result: B },
    { name: 'mnist', result: other },
  ]);
  assert.equal(data.length, 1);
  assert.match(data[0], /#3 mnist used mnist-test\.gz \(sha256 eeeeeeeeeeee…\), #1 plain t10k-images-idx3-ubyte\.gz/);
});

test('chart: one distinct colour per run for 7 runs, the worst case only by default, short legends', () => {
  assert.ok(new Set(RUN_PALETTE).size >= 7);
  const seven = Array.from({ length: 7 }, (_, i) => ({ name: `a rather long experiment name number ${i + 1}`, result: i % 2 ? B : A }));
  const series = overlaySeries(seven);
  assert.equal(series.length, 7, 'one line per run');
  assert.equal(new Set(series.map((s) => s.color)).size, 7);
  assert.ok(series.every((s) => s.worst && s.dash.length === 0));
  assert.equal(series[0].label, '#1 a rather long experimen…: worst case');
  // Starts at the clean accuracy (the defended one for a defended run).
  assert.deepEqual(series[1].points, [
    { eps: 0, accuracy: 0.87 },
    { eps: 0.05, accuracy: 0.66 },
    { eps: 0.1, accuracy: 0.5 },
  ]);
  // Every attack's curve on request: in the run's colour, dashed by threat model, for what the run evaluated.
  const all = overlaySeries(
    [
      { name: 'plain', result: A },
      { name: 'lesci-vote', result: B },
    ],
    { allCurves: true },
  );
  const b = all.filter((s) => s.run === 1);
  assert.deepEqual(
    b.map((s) => s.label),
    ['#2 lesci-vote: worst case', '#2 lesci-vote: fgsm/transfer'],
  );
  assert.ok(b.every((s) => s.color === RUN_PALETTE[1]));
  assert.deepEqual(b[1].dash, [6, 3]);
  assert.equal(all.filter((s) => s.run === 0).length, 3); // worst case, fgsm, pgd
});
