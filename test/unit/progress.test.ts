// A real evaluation reports overall progress that rises monotonically to the attack budget counted
// by hand, and logs that budget before the attacks run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runEvaluation } from '../../src/core/eval/evaluate';
import type { Progress } from '../../src/protocol/experiment';
import { UserError } from '../../src/core/errors';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS } from '../helpers/cli';

test('overall progress: the budget in gradient evaluations, reached at the end, never going back', async () => {
  const seen: Progress[] = [];
  const logs: string[] = [];
  await runEvaluation(
    {
      model: DEMO_MODEL,
      data: DEMO_TEST_IMAGES,
      labels: DEMO_TEST_LABELS,
      limit: 100,
      batchSize: 50,
      threads: 1,
      lanes: 1,
      ep: 'cpu',
      seed: 0,
      attacks: { names: ['fgsm', 'pgd'], eps: [0.02, 0.05], norm: 'linf', steps: 10 },
    },
    { onProgress: (p) => seen.push(p), onLog: (l) => logs.push(l) },
  );
  // FGSM: 1 gradient, PGD: 10 steps × 1 restart; 2 epsilons; 100 samples.
  const budget = 2 * (1 + 10) * 100;
  const overall = seen.filter((p) => p.overall).map((p) => p.overall!);
  assert.ok(overall.length > 4);
  assert.equal(overall[overall.length - 1].total, budget);
  assert.equal(overall[overall.length - 1].done, budget);
  for (let i = 1; i < overall.length; i++) assert.ok(overall[i].done >= overall[i - 1].done - 1e-9, 'progress never goes back');
  assert.ok(
    logs.some((l) => l.startsWith(`Attack budget: ${budget.toLocaleString('en-US')} gradient evaluations`)),
    logs.join('\n'),
  );
  assert.ok(
    overall.some((o) => o.etaSeconds !== undefined),
    'an estimate of the time left',
  );
});

test('epsilons: the CLI takes fractions, and the engine refuses a ball that holds every input', async () => {
  const base = {
    model: DEMO_MODEL,
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: 20,
    batchSize: 20,
    threads: 1,
    lanes: 1 as const,
    ep: 'cpu' as const,
    seed: 0,
  };
  await assert.rejects(
    runEvaluation({ ...base, attacks: { names: ['fgsm'], eps: [0.05, 1.5], norm: 'linf' } }),
    (e: Error) => e instanceof UserError && /Epsilon 1\.5 \(linf\) is larger than the input range 1/.test(e.message),
  );
  await assert.rejects(
    runEvaluation({ ...base, attacks: { names: ['fgsm'], eps: [29], norm: 'l2' } }),
    (e: Error) => e instanceof UserError && /√d = 28\.00/.test(e.message),
  );
  const r = cli([
    'evaluate',
    '--model',
    DEMO_MODEL,
    '--data',
    DEMO_TEST_IMAGES,
    '--labels',
    DEMO_TEST_LABELS,
    '--limit',
    '20',
    '--attack',
    'fgsm',
    '--eps',
    '8/255',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).attacks[0].eps, 8 / 255);
  const bad = cli(['evaluate', '--model', DEMO_MODEL, '--data', DEMO_TEST_IMAGES, '--labels', DEMO_TEST_LABELS, '--attack', 'fgsm', '--eps', '8/0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--eps '8\/0' is not a non-negative number or fraction/);
});
