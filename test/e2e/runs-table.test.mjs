// The runs table and the comparison of several runs, in a real VS Code (code-server): three real
// runs on the demo model written by the CLI before the workbench opens (a baseline FGSM run on 100
// samples, a LESCI-defended run on the same 100, and an FGSM run on 50: another sample limit);
// the table opened from the Runs view's title, sorted by a header, filtered, three runs selected
// and compared: the merged table's values and Δ cells match the result files, the data-mismatch
// warning names the run with the other limit, and the chart overlays one series per run. Then
// two runs selected in the Runs view and compared with Compare Runs: no warning (same data).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { ROOT } from '../../scripts/code-server.mjs';
import { openWorkbench, uiTest } from './harness.mjs';

const DATA = { data: 'data/t10k-images-idx3-ubyte.gz', labels: 'data/t10k-labels-idx1-ubyte.gz' };
const FGSM = { names: ['fgsm'], eps: [0.05, 0.1], norm: 'linf' };
/** In the order they run (so createdAt increases): #1 of the comparison is the baseline. */
const EXPERIMENTS = [
  { name: 'fgsm-baseline', model: 'fashion-cnn.onnx', ...DATA, limit: 100, attacks: FGSM },
  {
    name: 'lesci-vote',
    model: 'fashion-cnn.onnx',
    ...DATA,
    limit: 100,
    attacks: FGSM,
    defense: {
      kind: 'lesci',
      layer: '/features/features.5/MaxPool_output_0',
      reference: 'data/train-images-idx3-ubyte.gz',
      referenceLabels: 'data/train-labels-idx1-ubyte.gz',
      referenceLimit: 500,
      threats: ['transfer'],
      lesci: { mode: 'vote', k: 5 },
    },
  },
  { name: 'fgsm-small', model: 'fashion-cnn.onnx', ...DATA, limit: 50, attacks: FGSM },
];

let s;
let wb;
const resultFile = (name) => path.join(s.workspace, 'rlab-results', `${name}.json`);
const readResult = (name) => JSON.parse(readFileSync(resultFile(name), 'utf8'));

/** Real runs with the CLI, written where the Runs view looks (rlab-results/). */
function writeRuns(ws) {
  mkdirSync(path.join(ws, 'rlab-results'), { recursive: true });
  for (const e of EXPERIMENTS) {
    const file = path.join(ws, `${e.name}.rlab.json`);
    writeFileSync(file, JSON.stringify(e, null, 2));
    execFileSync(
      process.execPath,
      [
        path.join(ROOT, 'bin', 'robustness-lab.js'),
        'run',
        file,
        '--out',
        path.join(ws, 'rlab-results', `${e.name}.json`),
        '--threads',
        '2',
        '--cache-dir',
        path.join(ws, '.rlab-cache'),
      ],
      { cwd: ws, stdio: 'ignore' },
    );
  }
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;
function delta(x, base) {
  const pp = Math.round(1000 * (x - base)) / 10;
  return pp === 0 ? '0.0 pp' : `${pp > 0 ? '+' : '−'}${Math.abs(pp).toFixed(1)} pp`;
}

async function waitUntil(check, timeout, message) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(message);
}

describe('The runs table and the comparison of several runs', { timeout: 300_000 }, () => {
  before(async () => {
    s = await openWorkbench('runs-table', { setup: writeRuns });
    wb = s.wb;
  });

  after(async () => {
    await s?.close();
  });

  const frame = () => wb.resultsFrame();
  const rowsOf = () => frame().locator('table.runs tbody tr');
  const column = async (key) => frame().locator(`table.runs tbody td[data-key="${key}"]`).allInnerTexts();

  uiTest(
    () => wb,
    'the Runs view lists the three runs, the defended one with its defended numbers',
    async () => {
      assert.deepEqual(readdirSync(path.join(s.workspace, 'rlab-results')).sort(), ['fgsm-baseline.json', 'fgsm-small.json', 'lesci-vote.json']);
      await wb.openSidebar();
      const runs = wb.view('Runs').locator('.monaco-list-row');
      await waitUntil(async () => (await runs.count()) === 3, 30_000, 'the Runs view did not list three runs');
      const lesci = wb.treeItem('Runs', /^lesci-vote/);
      const defendedClean = readResult('lesci-vote').defense.clean.accuracy;
      assert.match(await lesci.innerText(), new RegExp(`defended clean ${(100 * defendedClean).toFixed(1)}%`));
    },
  );

  uiTest(
    () => wb,
    'the runs table opens from the Runs view, lists every run, sorts by a header and filters',
    async () => {
      await wb.view('Runs').locator('.pane-header').hover();
      await wb.view('Runs').locator('.actions [aria-label^="Show Runs Table"]').click();
      await s.page.locator('.tabs-container .tab', { hasText: 'Runs' }).waitFor({ timeout: 15_000 });
      await waitUntil(async () => (await rowsOf().count()) === 3, 30_000, 'the runs table did not list three runs');
      // Newest first by default.
      assert.deepEqual(await column('label'), ['fgsm-small', 'lesci-vote', 'fgsm-baseline']);
      // The defended run shows the defended model's clean accuracy and union worst case.
      const lesci = readResult('lesci-vote');
      const row = rowsOf().filter({ hasText: 'lesci-vote' });
      assert.equal(await row.locator('td[data-key="clean"]').innerText(), `${pct(lesci.defense.clean.accuracy)} (defended)`);
      assert.equal(await row.locator('td[data-key="worst"]').innerText(), lesci.defense.worstCase.map((w) => `ε ${w.eps}: ${pct(w.accuracy)}`).join(' · '));
      assert.match(await row.locator('td[data-key="defense"]').innerText(), /^lesci @ \/features\/features\.5\/MaxPool_output_0$/);
      assert.equal(await row.locator('td[data-key="samples"]').innerText(), '100');
      assert.match(await row.locator('td[data-key="provider"]').innerText(), /^(cpu|cuda)/);
      assert.match(await row.locator('td[data-key="budget"]').innerText(), /fgsm/);
      assert.match(await row.locator('td[data-key="seconds"]').innerText(), /\d s$/);

      // Sort by the worst case: a numeric column sorts descending first, then ascending.
      const worstOf = (name) => {
        const r = readResult(name);
        return Math.min(...(r.defense?.worstCase ?? r.worstCase).map((w) => w.accuracy));
      };
      // Ties (equal worst cases) keep the newest run first in either direction.
      const created = (name) => Date.parse(readResult(name).createdAt);
      const names = EXPERIMENTS.map((e) => e.name);
      const byWorst = [...names].sort((a, b) => worstOf(b) - worstOf(a) || created(b) - created(a));
      const byWorstAsc = [...names].sort((a, b) => worstOf(a) - worstOf(b) || created(b) - created(a));
      const header = frame().locator('table.runs thead th[data-key="worst"]');
      await header.locator('button').click();
      await waitUntil(async () => (await header.getAttribute('aria-sort')) === 'descending', 5000, 'not sorted descending');
      assert.deepEqual(await column('label'), byWorst);
      await header.locator('button').click();
      await waitUntil(async () => (await header.getAttribute('aria-sort')) === 'ascending', 5000, 'not sorted ascending');
      assert.deepEqual(await column('label'), byWorstAsc);
      // Sort by the number of samples, ascending: the 50-sample run first.
      await frame().locator('table.runs thead th[data-key="samples"] button').click();
      await frame().locator('table.runs thead th[data-key="samples"] button').click();
      assert.equal((await column('label'))[0], 'fgsm-small');

      // Filter: words in any column.
      const filter = frame().locator('#filter');
      await filter.fill('lesci');
      await waitUntil(async () => (await rowsOf().count()) === 1, 5000, 'the filter "lesci" did not leave one run');
      assert.deepEqual(await column('label'), ['lesci-vote']);
      await filter.fill('fgsm none');
      await waitUntil(async () => (await rowsOf().count()) === 2, 5000, 'the filter "fgsm none" did not leave the two undefended runs');
      assert.match(await frame().locator('.count').innerText(), /2 of 3 runs/);
      await wb.screenshot('01-runs-table-filtered');
      await filter.fill('');
      await waitUntil(async () => (await rowsOf().count()) === 3, 5000, 'clearing the filter did not list every run');
    },
  );

  uiTest(
    () => wb,
    'three runs selected and compared: values and Δ from the result files, the data warning, the overlaid chart',
    async () => {
      const compare = frame().locator('#compare');
      assert.equal(await compare.isDisabled(), true, 'Compare needs two runs');
      // Selected in this order: the first is the baseline.
      for (const name of ['fgsm-baseline', 'lesci-vote', 'fgsm-small']) {
        await rowsOf().filter({ hasText: name }).locator('input.select').check();
      }
      assert.equal(await compare.innerText(), 'Compare 3 Runs');
      await wb.screenshot('02-runs-selected');
      await compare.click();
      await frame().locator('h1', { hasText: 'Comparison of 3 runs' }).waitFor({ timeout: 10_000 });

      const [a, b, c] = EXPERIMENTS.map((e) => readResult(e.name));
      // The merged table: the union worst case per eps, one column per run, Δ against #1.
      for (const [i, eps] of [0.05, 0.1].entries()) {
        const row = frame().locator(`table.merged tr[data-key="worst case|union|linf|${eps}"]`);
        const values = await row.locator('td.value').allInnerTexts();
        const expected = [a.worstCase[i].accuracy, b.defense.worstCase[i].accuracy, c.worstCase[i].accuracy];
        assert.deepEqual(values, expected.map(pct));
        assert.deepEqual(await row.locator('td.delta').allInnerTexts(), [delta(expected[1], expected[0]), delta(expected[2], expected[0])]);
      }
      // A single attack on the undefended model lines up across the three runs.
      const fgsm = frame().locator('table.merged tr[data-key="fgsm|whitebox|linf|0.05"]');
      const baseline = (r) => r.attacks.find((x) => x.target === 'baseline' && x.eps === 0.05).accuracy;
      assert.deepEqual(await fgsm.locator('td.value').allInnerTexts(), [a, b, c].map(baseline).map(pct));
      // Clean: the defended run's defended clean accuracy.
      const clean = frame().locator('table.merged tr[data-key="clean|||0"]');
      assert.deepEqual(await clean.locator('td.value').allInnerTexts(), [a.clean.accuracy, b.defense.clean.accuracy, c.clean.accuracy].map(pct));
      // The attacks on the defended model exist only in the defended run.
      assert.deepEqual(await frame().locator('table.merged tr[data-key="fgsm|transfer|linf|0.05"] td.value').allInnerTexts(), [
        '–',
        pct(b.attacks.find((x) => x.target === 'defended' && x.eps === 0.05).accuracy),
        '–',
      ]);
      // The data differ: #3 used another sample limit.
      const warning = frame().locator('.mismatch[role="alert"]');
      await warning.waitFor({ timeout: 5000 });
      assert.match(await warning.innerText(), /#3 fgsm-small evaluated 50 samples, #1 fgsm-baseline 100 \(a different sample limit\)/);
      assert.doesNotMatch(await warning.innerText(), /#2 lesci-vote/, 'the defended run used the same data');
      // No cell is cut off: every cell's text fits its box.
      const clipped = await frame()
        .locator('table.merged td, table.merged th')
        .evaluateAll((cells) => cells.filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => el.textContent));
      assert.deepEqual(clipped, []);
      // The chart: one series per run by default, in three distinct colours.
      const canvas = frame().locator('.chart-box canvas');
      await canvas.waitFor({ timeout: 5000 });
      assert.ok((await canvas.boundingBox()).height > 200, 'the chart has a size');
      const swatches = await frame()
        .locator('ol.legend .swatch')
        .evaluateAll((els) => els.map((el) => el.ownerDocument.defaultView.getComputedStyle(el).backgroundColor));
      assert.equal(new Set(swatches).size, 3);
      await wb.screenshot('03-comparison');
      await frame().locator('.chart-box').scrollIntoViewIfNeeded();
      await wb.screenshot('04-comparison-chart');

      // Another baseline: the Δ columns are against it.
      await frame().locator('#baseline').selectOption({ label: '#2 lesci-vote' });
      await frame().locator('table.merged th', { hasText: '#1 lesci-vote' }).waitFor({ timeout: 5000 });
      const row05 = frame().locator('table.merged tr[data-key="worst case|union|linf|0.05"]');
      assert.equal((await row05.locator('td.delta').allInnerTexts())[0], delta(a.worstCase[0].accuracy, b.defense.worstCase[0].accuracy));

      await frame().locator('#back').click();
      await waitUntil(async () => (await rowsOf().count()) === 3, 5000, 'back to the table');
    },
  );

  uiTest(
    () => wb,
    'Compare Runs on two runs selected in the Runs view shows their comparison, without a data warning',
    async () => {
      await wb.openSidebar();
      const first = wb.treeItem('Runs', /^fgsm-baseline/);
      const second = wb.treeItem('Runs', /^lesci-vote/);
      await first.click();
      await second.click({ modifiers: ['Control'] });
      await waitUntil(async () => (await wb.view('Runs').locator('.monaco-list-row.selected').count()) === 2, 5000, 'two runs are not selected');
      await wb.contextMenu(second, 'Compare Runs');
      await frame().locator('h1', { hasText: 'Comparison of 2 runs' }).waitFor({ timeout: 15_000 });
      const heads = await frame().locator('table.merged th.run-col').allInnerTexts();
      assert.deepEqual(heads.map((h) => h.replace(/^#\d /, '')).sort(), ['fgsm-baseline', 'lesci-vote']);
      assert.equal(await frame().locator('.mismatch').count(), 0, 'same data, no warning');
      await wb.screenshot('05-compare-from-runs-view');
    },
  );
});
