/**
 * The layer sweep (src/core/eval/sweep.ts) on the demo model, against an independent path: one
 * plain runEvaluation per layer with the defense at that layer (same seed, its own fit cache, so
 * each layer is refitted), whose clean accuracy, projection rate, per-sample union worst case,
 * verdict and defended attacks must equal the sweep's entry; the isometry against a separate
 * isometry run; the Pareto flags against a brute-force dominance check written here; the baseline
 * attacked once; cancellation between layers; and the CLI end to end with its bad inputs.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isCancelled } from '../../src/core/cancel';
import { runEvaluation } from '../../src/core/eval/evaluate';
import type { AttackPlan, DefensePlan, EvaluationConfig } from '../../src/protocol/experiment';
import type { RunResult, SweepLayer } from '../../src/protocol/run-result';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, DEMO_TRAIN_IMAGES, DEMO_TRAIN_LABELS } from '../helpers/cli';

const POOL1 = '/features/features.2/MaxPool_output_0';
const POOL2 = '/features/features.5/MaxPool_output_0';
const FC1 = '/classifier/classifier.2/Relu_output_0';
const LAYERS = [FC1, POOL1, POOL2]; // out of order on purpose: the sweep runs them in graph order
const EPS = [0.03, 0.08];
const PAIRS = 300;
const SEED = 5;

let work: string;
before(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rlab-sweep-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

const attacks: AttackPlan = { names: ['fgsm', 'pgd'], eps: EPS, norm: 'linf', steps: 3, queries: 60 };
const defense = (layer: string): DefensePlan => ({
  kind: 'lesci',
  layer,
  reference: DEMO_TRAIN_IMAGES,
  referenceLabels: DEMO_TRAIN_LABELS,
  referenceLimit: 1000,
  lesci: { mode: 'vote' },
});
const base = (cacheDir: string): EvaluationConfig => ({
  model: DEMO_MODEL,
  data: DEMO_TEST_IMAGES,
  labels: DEMO_TEST_LABELS,
  limit: 100,
  batchSize: 50,
  threads: 1,
  lanes: 1,
  ep: 'cpu',
  seed: SEED,
  attacks,
  cacheDir,
});

let sweep: RunResult;
const logs: string[] = [];
const phases: string[] = [];

test('the sweep equals one plain evaluation per layer, with the baseline attacked once', async () => {
  const out = path.join(work, 'sweep.json');
  sweep = await runEvaluation(
    { ...base(path.join(work, 'cache-sweep')), defense: defense(''), sweep: { layers: LAYERS, pairs: PAIRS }, out },
    { onLog: (l) => logs.push(l), onProgress: (p) => phases.push(p.phase) },
  );
  assert.ok(existsSync(out));
  const s = sweep.sweep!;
  assert.deepEqual(
    s.layers.map((l) => l.tensor),
    [POOL1, POOL2, FC1],
  );
  assert.deepEqual(
    s.layers.map((l) => l.depth),
    [3, 6, 9],
  );
  assert.deepEqual(s.paretoAt, { norm: 'linf', eps: 0.08 });
  assert.deepEqual(s.requested, LAYERS);

  // The baseline ran once: two attacks at two epsilons, all on the undefended model.
  assert.equal(logs.filter((l) => /^Attack (fgsm|pgd) \(linf\)/.test(l)).length, 4);
  assert.ok(sweep.attacks!.every((a) => a.target === 'baseline'));
  assert.equal(sweep.attacks!.length, 4);
  assert.equal(sweep.defense, undefined);
  // Progress per layer.
  for (let i = 1; i <= 3; i++)
    assert.ok(
      phases.some((p) => p.startsWith(`Layer ${i}/3: `)),
      `no progress for layer ${i}`,
    );

  for (const layer of s.layers) {
    const single = await runEvaluation({
      ...base(path.join(work, 'cache-single')),
      defense: defense(layer.tensor),
      isometry: { layers: [layer.tensor], pairs: PAIRS },
    });
    const d = single.defense!;
    assert.equal(layer.cleanAccuracy, d.clean.accuracy, `${layer.tensor}: clean accuracy`);
    assert.equal(layer.projectionRate, d.clean.projectionRate, `${layer.tensor}: projection rate`);
    assert.ok(typeof layer.projectionRate === 'number');
    assert.deepEqual(layer.worstCase, d.worstCase, `${layer.tensor}: worst case`);
    assert.ok(layer.worstCase.every((w) => w.method === 'per-sample-union'));
    assert.equal(layer.verdict, d.verdict);
    assert.deepEqual(layer.verdictReasons, d.verdictReasons);
    assert.deepEqual(layer.threats, d.threats);
    assert.ok(
      Object.keys(layer.threats).some((t) => t.startsWith('adaptive')),
      'the adaptive threat model ran',
    );
    assert.equal(layer.cached, false, 'each layer is fitted once in its own cache entry');
    const defended = single.attacks!.filter((a) => a.target === 'defended');
    assert.deepEqual(
      layer.attacks.map((a) => [a.attack, a.threat, a.eps, a.accuracy, a.projectionRate]),
      defended.map((a) => [a.attack, a.threat, a.eps, a.accuracy, a.projectionRate]),
    );
    assert.deepEqual(
      layer.checks,
      single.checks!.filter((c) => c.target === 'defended' && c.fired),
    );
    // The baseline both compare with.
    assert.deepEqual(sweep.worstCase, single.worstCase);
    assert.equal(sweep.clean.accuracy, single.clean.accuracy);
    // Isometry: the isometry module's numbers for that layer alone.
    const iso = single.isometry!.layers[0];
    assert.equal(layer.isometry!.withinPearson, iso.within.pearson);
    assert.equal(layer.isometry!.withinDistortion, iso.within.distortion);
    assert.equal(layer.isometry!.betweenPearson, iso.between.pearson);
  }
});

/** Brute force, written apart from the code: p is dominated when some other layer is ≥ in both and > in one. */
function dominated(layers: SweepLayer[], i: number, eps: number): boolean {
  const y = (l: SweepLayer) => l.worstCase.find((w) => w.eps === eps)!.accuracy;
  for (let j = 0; j < layers.length; j++) {
    if (j === i) continue;
    const a = layers[j],
      b = layers[i];
    const geBoth = a.cleanAccuracy >= b.cleanAccuracy && y(a) >= y(b);
    const gtOne = a.cleanAccuracy > b.cleanAccuracy || y(a) > y(b);
    if (geBoth && gtOne) return true;
  }
  return false;
}

test('the Pareto flags are those of a brute-force dominance check, at the largest eps and per eps', () => {
  const layers = sweep.sweep!.layers;
  layers.forEach((l, i) => {
    assert.equal(l.pareto, !dominated(layers, i, 0.08), `${l.tensor} at 0.08`);
    assert.deepEqual(
      l.paretoEps,
      EPS.filter((e) => !dominated(layers, i, e)),
      `${l.tensor} per eps`,
    );
  });
  assert.ok(
    layers.some((l) => l.pareto),
    'some layer is always on the front',
  );
});

test('cancelling during the second layer stops the sweep: no third layer, no result file', async () => {
  const controller = new AbortController();
  const seen: string[] = [];
  const out = path.join(work, 'cancelled.json');
  await assert.rejects(
    runEvaluation(
      { ...base(path.join(work, 'cache-sweep')), defense: defense(''), sweep: { layers: LAYERS, pairs: PAIRS }, out },
      {
        signal: controller.signal,
        onProgress: (p) => {
          seen.push(p.phase);
          if (p.phase.startsWith('Layer 2/3: ')) controller.abort();
        },
      },
    ),
    (e: unknown) => isCancelled(e),
  );
  assert.ok(seen.some((p) => p.startsWith('Layer 2/3')));
  assert.ok(!seen.some((p) => p.startsWith('Layer 3/3')), 'the third layer never started');
  assert.ok(!existsSync(out), 'a cancelled sweep writes no result');
});

test('a sweep without a defense, or with a layer that is not an insertion point, fails before any attack', async () => {
  await assert.rejects(runEvaluation({ ...base(path.join(work, 'c')), sweep: {} }), /needs a defense/);
  await assert.rejects(
    runEvaluation({ ...base(path.join(work, 'c')), defense: defense(''), sweep: { layers: [POOL1, 'no-such-tensor'] } }),
    (e: Error) => e.name === 'UserError' && /no-such-tensor/.test(e.message),
  );
});

test('CLI sweep: a table with the Pareto column, the RunResult with the sweep, and bad flags as errors', () => {
  const out = path.join(work, 'cli.json');
  const common = [
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--limit',
    '60',
    '--defense',
    'lesci',
    '--mode',
    'vote',
    '--reference',
    DEMO_TRAIN_IMAGES,
    '--reference-labels',
    DEMO_TRAIN_LABELS,
    '--reference-limit',
    '1000',
    '--cache-dir',
    path.join(work, 'cache-sweep'),
    '--threads',
    '1',
  ];
  const r = cli(['sweep', ...common, '--layers', `${POOL2},${POOL1}`, '--attack', 'fgsm', '--eps', '0.05', '--pairs', '200', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Layer sweep: lesci at 2 insertion points/);
  const header = r.stdout.split('\n').find((l) => /^depth\s+layer\s+clean\s+projection\s+worst eps 0\.05\s+within r\s+verdict\s+fit\s+Pareto/.test(l));
  assert.ok(header, r.stdout);
  assert.match(r.stdout, /\(no defense\)/);
  assert.match(r.stderr, /Layer 1\/2: \/features\/features\.2\/MaxPool_output_0/);
  const result = JSON.parse(readFileSync(out, 'utf8')) as RunResult;
  assert.deepEqual(
    result.sweep!.layers.map((l) => l.tensor),
    [POOL1, POOL2],
  );
  assert.equal(result.sweep!.isometryPairs, 200);
  // The table's Pareto marks are the result's.
  const table = r.stdout.slice(r.stdout.indexOf('Layer sweep:')).split('\n');
  for (const l of result.sweep!.layers) {
    const row = table.find((x) => x.includes(l.tensor))!;
    assert.equal(row.trimEnd().endsWith('✓'), l.pareto, row);
  }

  const bad = (args: string[], pattern: RegExp) => {
    const b = cli(['sweep', ...common, ...args]);
    assert.equal(b.code, 2, `${args.join(' ')}: ${b.stderr}`);
    assert.match(b.stderr, pattern);
  };
  bad(['--layers', 'nope', '--eps', '0.05'], /nope/);
  bad(['--layers', `${POOL1},`, '--eps', '0.05'], /item 2 is empty/);
  bad(['--layer', POOL1, '--eps', '0.05'], /--layers all\|T1,T2/);
  bad(['--layers', 'all'], /needs --eps/);
});
