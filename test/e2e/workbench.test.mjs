// The extension in a real VS Code (code-server), in a trusted workspace holding the demo model:
// what a user sees in the sidebar, the defense wizard, running, the results panel, cancelling,
// and a crash of the compute process.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { openWorkbench, uiTest } from './harness.mjs';

const DATA = { data: 'data/t10k-images-idx3-ubyte.gz', labels: 'data/t10k-labels-idx1-ubyte.gz' };
/** Quick: clean + FGSM on 200 images (about a second of compute). */
const QUICK = { name: 'quick-fgsm', model: 'fashion-cnn.onnx', ...DATA, limit: 200, attacks: { names: ['fgsm'], eps: [0.05, 0.1], norm: 'linf' } };
/** A LESCI vote defense at the last pooling layer, attacked with FGSM under the three gradient threat models. */
/** The TensorFlow.js demo model (a layers model), defended at a Keras layer. */
const TFJS = {
  name: 'tfjs-lesci',
  model: 'tfjs/fashion-layers/model.json',
  ...DATA,
  limit: 100,
  attacks: { names: ['fgsm'], eps: [0.05], norm: 'linf' },
  defense: {
    kind: 'lesci',
    layer: 'pool2',
    reference: 'data/train-images-idx3-ubyte.gz',
    referenceLabels: 'data/train-labels-idx1-ubyte.gz',
    referenceLimit: 500,
    threats: ['transfer', 'adaptive'],
  },
};

const LESCI = {
  name: 'quick-lesci',
  model: 'fashion-cnn.onnx',
  ...DATA,
  limit: 200,
  attacks: { names: ['fgsm'], eps: [0.05, 0.1], norm: 'linf' },
  defense: {
    kind: 'lesci',
    layer: '/features/features.5/MaxPool_output_0',
    reference: 'data/train-images-idx3-ubyte.gz',
    referenceLabels: 'data/train-labels-idx1-ubyte.gz',
    threats: ['transfer', 'bpda', 'direct'],
    lesci: { mode: 'vote', k: 5 },
  },
};
/** Long: 100-step PGD at five epsilons on 1,000 images (minutes), to cancel or crash midway. */
const LONG = {
  name: 'long-pgd',
  model: 'fashion-cnn.onnx',
  ...DATA,
  attacks: { names: ['pgd'], eps: [0.01, 0.02, 0.03, 0.05, 0.1], norm: 'linf', steps: 100 },
};

const LAYERS = [
  ['/features/features.0/Conv', 'Conv [batch, 32, 24, 24] · 832 params'],
  ['/features/features.2/MaxPool', 'MaxPool [batch, 32, 12, 12]'],
  ['/features/features.3/Conv', 'Conv [batch, 64, 8, 8] · 51,264 params'],
  ['/classifier/classifier.1/Gemm', 'Gemm [batch, 256] · 262,400 params'],
];

let s;
let wb;
const results = () => path.join(s.workspace, 'rlab-results');
const resultFiles = () => {
  try {
    return readdirSync(results()).sort();
  } catch {
    return [];
  }
};

/** Pids of evaluation processes of this test's extension (worker.js --role=evaluate). */
function evaluationPids() {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.startsWith(s.extensionDir) && a.endsWith('worker.js')) && argv.includes('--role=evaluate')) pids.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}

async function runFromExperimentsView(name) {
  const item = wb.treeItem('Experiments', new RegExp(`^${name}`));
  await item.waitFor({ timeout: 20_000 });
  await wb.contextMenu(item, 'Run Experiment');
}

/** A tree row, scrolled into the rendered part of the view (rows outside it are not in the DOM). */
async function revealTreeItem(viewTitle, name) {
  const row = wb.treeItem(viewTitle, name);
  const list = wb.view(viewTitle).locator('.monaco-list').first();
  await list.hover();
  await s.page.mouse.wheel(0, -5000);
  for (let i = 0; i < 30 && !(await row.count()); i++) {
    await s.page.mouse.wheel(0, 100);
    await s.page.waitForTimeout(150);
  }
  return row;
}

async function waitUntil(check, timeout, message) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(message);
}

describe('Robustness Lab in VS Code (trusted workspace)', { timeout: 420_000 }, () => {
  before(async () => {
    s = await openWorkbench('workbench', {
      setup: (ws) => {
        writeFileSync(path.join(ws, 'quick-fgsm.rlab.json'), JSON.stringify(QUICK, null, 2));
        writeFileSync(path.join(ws, 'long-pgd.rlab.json'), JSON.stringify(LONG, null, 2));
        writeFileSync(path.join(ws, 'quick-lesci.rlab.json'), JSON.stringify(LESCI, null, 2));
        writeFileSync(path.join(ws, 'tfjs-lesci.rlab.json'), JSON.stringify(TFJS, null, 2));
        writeFileSync(path.join(ws, 'bad-norm.rlab.json'), JSON.stringify({ ...QUICK, name: undefined, attacks: { ...QUICK.attacks, norm: 'l3' } }, null, 2));
      },
      settings: { 'robustnessLab.sampleLimit': 300 },
    });
    wb = s.wb;
  });

  after(async () => {
    await s?.close();
  });

  uiTest(
    () => wb,
    'the Models view lists the demo model with its inputs, outputs and layers',
    async () => {
      // As VS Code's default start page would, open the walkthrough once, so that its steps follow
      // what happens from now on (the tests run with workbench.startupEditor = none).
      await wb.command('Welcome: Open Walkthrough...');
      await wb.pick(undefined, 'Get Started with Robustness Lab');
      await s.page.locator('.gettingStartedContainer').getByText('Open the demo', { exact: true }).first().waitFor({ timeout: 20_000 });
      // Closed with its tab's button: the page takes the focus while it renders, and a palette typed into meanwhile closes.
      await s.page.waitForTimeout(1000);
      const welcome = s.page.locator('.tabs-container .tab', { hasText: 'Welcome' }).first();
      await welcome.hover();
      await welcome.locator('.tab-actions .action-label').first().click();
      await welcome.waitFor({ state: 'detached', timeout: 10_000 });
      await wb.openSidebar();
      await wb.expand(wb.treeItem('Models', /^fashion-cnn\.onnx/));
      // Layers are grouped by module path; rows below the fold are scrolled to.
      await wb.treeItem('Models', /^\/features\/features\.0\/Conv\b/).waitFor({ timeout: 30_000 });
      for (const [name, description] of LAYERS) {
        const row = await revealTreeItem('Models', new RegExp(`^${name.replace(/[./]/g, '\\$&')}\\b`));
        await row.waitFor({ timeout: 30_000 });
        assert.match(await row.innerText(), new RegExp(description.replace(/[[\].·,]/g, '\\$&')));
      }
      await (await revealTreeItem('Models', /^Layers/)).filter({ hasText: '317,066 params' }).waitFor();
      // Insertion points carry the target icon.
      assert.equal((await wb.view('Models').locator('.codicon-target').count()) >= 5, true);
      await wb.screenshot('01-models-view');
      await revealTreeItem('Models', /^fashion-cnn\.onnx/); // back to the top for the next tests
    },
  );

  uiTest(
    () => wb,
    'the defense wizard: Back keeps answers, a cancelled wizard offers its answers again, and the file it writes survives an undo',
    async () => {
      const layer = await revealTreeItem('Models', /^\/features\/features\.5\/MaxPool/);
      const title = 'Insert LESCI Defense after /features/features.5/MaxPool';
      // One multi-step input: the total counts only the steps that apply (k appears with the vote mode).
      const step = (n, total) => `${title} (${n}/${total})`;
      await wb.contextMenu(layer, 'Insert LESCI Defense Here');
      await wb.pick(step(1, 14), 'train-images-idx3-ubyte.gz');
      // The labels next to the images come first, and their count is checked against the images'.
      const labels = await wb.waitForQuickInput(step(2, 14));
      assert.match(await labels.locator('.monaco-list-row').first().innerText(), /train-labels-idx1-ubyte\.gz/);
      await wb.accept(step(2, 14));
      await wb.pick(step(3, 14), 'vote');
      // The input box validates as you type.
      const widget = await wb.waitForQuickInput(step(4, 15));
      await widget.locator('input.input').fill('0');
      await widget.locator('.quick-input-message', { hasText: 'Must be at least 1' }).waitFor({ timeout: 5000 });
      await wb.screenshot('02-validation');
      await wb.type(step(4, 15), '5');
      // Back returns to k with its answer, and forward again.
      const pca = await wb.waitForQuickInput(step(5, 15));
      await pca.locator('.codicon-quick-input-back').first().click();
      const back = await wb.waitForQuickInput(step(4, 15));
      assert.equal(await back.locator('input.input').inputValue(), '5');
      await wb.accept(step(4, 15));
      // Cancel at the PCA step: the answers are kept.
      await wb.waitForQuickInput(step(5, 15));
      await s.page.keyboard.press('Escape');
      await wb.quickInput().waitFor({ state: 'hidden', timeout: 5000 });

      // Again: offered with the answers from last time, the reference set preselected.
      await wb.contextMenu(layer, 'Insert LESCI Defense Here');
      const resumed = `${title} (your answers from last time)`;
      const first = await wb.waitForQuickInput(`${resumed} (1/15)`);
      assert.match(await first.locator('.monaco-list-row.focused').innerText(), /train-images-idx3-ubyte\.gz/);
      await wb.accept(`${resumed} (1/15)`);
      await wb.accept(`${resumed} (2/15)`);
      await wb.accept(`${resumed} (3/15)`); // vote, kept
      assert.equal(await (await wb.waitForQuickInput(`${resumed} (4/15)`)).locator('input.input').inputValue(), '5');
      await wb.accept(`${resumed} (4/15)`);
      await wb.accept(`${resumed} (5/15)`); // PCA dimensions: the default
      await wb.accept(`${resumed} (6/15)`); // every threat model (preselected)
      await wb.pick(`${resumed} (7/15)`, 'New experiment');
      await wb.accept(`${resumed} (8/15)`); // the suggested name: fashion-cnn-lesci.rlab.json
      await wb.pick(`${resumed} (9/15)`, 't10k-images-idx3-ubyte.gz');
      await wb.accept(`${resumed} (10/15)`); // its labels, first in the list
      await wb.type(`${resumed} (11/15)`, '200'); // the sample limit
      await wb.accept(`${resumed} (12/15)`); // no open-set inputs (the default)
      await wb.accept(`${resumed} (13/15)`); // attacks: the quick strength preset comes first
      await wb.pick(`${resumed} (14/15)`, 'linf');
      // Epsilons: fractions are fine, and values beyond the input range are refused as you type.
      const epsBox = await wb.waitForQuickInput(`${resumed} (15/15)`);
      await epsBox.locator('input.input').fill('0.05, 1.5');
      await epsBox.locator('.quick-input-message', { hasText: 'larger than the input range' }).waitFor({ timeout: 5000 });
      await wb.type(`${resumed} (15/15)`, '0.05, 8/255');

      const file = path.join(s.workspace, 'fashion-cnn-lesci.rlab.json');
      await waitUntil(async () => resultOf(() => JSON.parse(readFileSync(file, 'utf8'))) !== undefined, 15_000, `${file} was not written`);
      const experiment = JSON.parse(readFileSync(file, 'utf8'));
      assert.deepEqual(experiment, {
        name: 'fashion-cnn-lesci',
        model: 'fashion-cnn.onnx',
        ...DATA,
        limit: 200,
        attacks: { names: [], strength: 'quick', eps: [0.05, 8 / 255], norm: 'linf' },
        defense: {
          kind: 'lesci',
          layer: '/features/features.5/MaxPool_output_0',
          lesci: { mode: 'vote', k: 5 },
          reference: 'data/train-images-idx3-ubyte.gz',
          referenceLabels: 'data/train-labels-idx1-ubyte.gz',
        },
      });
      // It opens in an editor and appears in the Experiments view.
      const tab = s.page.locator('.tabs-container .tab', { hasText: 'fashion-cnn-lesci.rlab.json' });
      await tab.waitFor({ timeout: 10_000 });
      await wb.treeItem('Experiments', /^fashion-cnn-lesci/).waitFor({ timeout: 15_000 });
      await wb.screenshot('03-experiment-written');
      // An undo in the new file's editor does not delete it (it was not created as an undoable edit).
      await tab.click();
      await s.page.locator('.editor-instance .monaco-editor textarea').first().focus();
      await s.page.keyboard.press('Control+Z');
      await s.page.waitForTimeout(1000);
      assert.ok(existsSync(file), 'the experiment file survives an undo');
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), experiment);
    },
  );

  uiTest(
    () => wb,
    'running an experiment shows progress, then the results panel with real numbers',
    async () => {
      await wb.recordNotifications();
      await runFromExperimentsView('quick-fgsm');
      const frame = wb.resultsFrame();
      const cleanRow = frame.locator('tr[data-key="clean accuracy"] td');
      await cleanRow.waitFor({ timeout: 60_000 });
      const seen = await wb.recordedNotifications();
      assert.ok(
        seen.some((t) => /Robustness Lab: quick-fgsm/.test(t)),
        `no progress notification; saw ${JSON.stringify(seen)}`,
      );
      assert.ok(
        seen.some((t) => /(Loading model|Clean accuracy|Attack fgsm)[^:]*: [\d,]+\/[\d,]+/.test(t)),
        `no phase with counts; saw ${JSON.stringify(seen)}`,
      );

      const files = resultFiles().filter((f) => f.endsWith('.json'));
      assert.equal(files.length, 1, `one result file, found ${files}`);
      assert.match(files[0], /^\d{8}-\d{6}-quick-fgsm\.json$/);
      const result = JSON.parse(readFileSync(path.join(results(), files[0]), 'utf8'));
      assert.equal(result.clean.count, 200);
      const shown = await cleanRow.innerText();
      assert.equal(shown, `${(100 * result.clean.accuracy).toFixed(2)}% (${result.clean.correct} / 200)`);
      assert.ok(result.clean.accuracy > 0.8, `clean accuracy ${result.clean.accuracy}`);
      // Robust accuracy per epsilon, in the worst-case table, as in the file.
      for (const a of result.attacks) {
        await frame
          .locator('vscode-table-row', { hasText: `${(100 * a.accuracy).toFixed(2)}%` })
          .first()
          .waitFor({ timeout: 10_000 });
      }
      assert.ok(
        result.attacks.every((a) => a.accuracy < result.clean.accuracy),
        'FGSM lowers accuracy',
      );
      await frame.locator('canvas[aria-label="Robust accuracy against epsilon"]').waitFor();
      await frame.locator('table.confusion').first().waitFor();
      await wb.screenshot('04-results-panel');
      // The run is listed in the Runs view under its experiment's name, with the model it evaluated.
      const run = wb.treeItem('Runs', /^quick-fgsm/).first();
      await run.waitFor({ timeout: 15_000 });
      assert.match(await run.innerText(), /fashion-cnn/);
      assert.equal(result.experiment.name, 'quick-fgsm');
    },
  );

  uiTest(
    () => wb,
    'a defended experiment fits the defense, attacks it under each threat model and shows the verdict',
    async () => {
      const before = new Set(resultFiles());
      await wb.recordNotifications();
      await runFromExperimentsView('quick-lesci');
      const frame = wb.resultsFrame();
      await frame.locator('tr[data-key="verdict"] td').waitFor({ timeout: 90_000 });
      const seen = await wb.recordedNotifications();
      assert.ok(
        seen.some((t) => /Fitting the lesci defense/.test(t) || /Clean accuracy of the defended model/.test(t)),
        `defense phases in the progress; saw ${JSON.stringify(seen)}`,
      );
      const file = resultFiles().find((f) => !before.has(f) && f.endsWith('.json'));
      const result = JSON.parse(readFileSync(path.join(results(), file), 'utf8'));
      assert.equal(result.defense.kind, 'lesci');
      assert.equal(await frame.locator('tr[data-key="verdict"] td').innerText(), result.defense.verdict);
      assert.match(
        await frame.locator('tr[data-key="defended clean accuracy"] td').innerText(),
        new RegExp(`^${(100 * result.defense.clean.accuracy).toFixed(2)}%`),
      );
      for (const wc of result.defense.worstCase) {
        await frame
          .locator('#worst vscode-table-row', { hasText: `${(100 * wc.accuracy).toFixed(2)}%` })
          .filter({ hasText: wc.threat })
          .first()
          .waitFor({ timeout: 10_000 });
      }
      assert.deepEqual([...new Set(result.attacks.map((a) => a.threat))].sort(), ['bpda', 'direct', 'transfer', 'whitebox']);
      // The Runs view shows the defended model's numbers for a defended run: its clean accuracy, the union worst case, the verdict.
      const run = wb.treeItem('Runs', /^quick-lesci/).first();
      await run.waitFor({ timeout: 15_000 });
      const worst = Math.min(...result.defense.worstCase.map((w) => w.accuracy));
      const listed = await run.innerText();
      assert.ok(listed.includes(`defended clean ${(100 * result.defense.clean.accuracy).toFixed(1)}%`), listed);
      assert.ok(listed.includes(`worst ${(100 * worst).toFixed(1)}%`), listed);
      assert.ok(listed.includes(result.defense.verdict), listed);
      await wb.screenshot('04b-defended-results');
      await frame.locator('#defense').scrollIntoViewIfNeeded();
      await wb.screenshot('04c-defended-results-tables');
    },
  );

  uiTest(
    () => wb,
    'Export Defended Model writes one ONNX model that the Models view then lists',
    async () => {
      await wb.contextMenu(wb.treeItem('Experiments', /^quick-lesci/), 'Export Defended Model');
      await wb.accept('Export Defended Model'); // the suggested fashion-cnn-lesci.onnx beside the model
      await wb.toast('Defended model written to').waitFor({ timeout: 60_000 });
      const exported = path.join(s.workspace, 'fashion-cnn-lesci.onnx');
      assert.ok(existsSync(exported), exported);
      const model = wb.treeItem('Models', /^fashion-cnn-lesci\.onnx/);
      await model.waitFor({ timeout: 20_000 });
      await wb.expand(model); // inspected like any other model
      await wb
        .treeItem('Models', /^Layers/)
        .first()
        .waitFor({ timeout: 30_000 });
      await model.locator('.monaco-tl-twistie').click(); // collapse again
    },
  );

  uiTest(
    () => wb,
    'Clear Fit Cache lists the cache next to the model with its size and deletes it after a confirmation',
    async () => {
      const cache = path.join(s.workspace, '.rlab-cache');
      assert.ok(existsSync(cache), 'the defended run left a fit cache');
      await wb.command('Robustness Lab: Clear Fit Cache…');
      const picker = await wb.waitForQuickInput('Clear Fit Cache (');
      assert.match(await picker.locator('.quick-input-title').innerText(), /Clear Fit Cache \([\d.]+ (KB|MB|GB)/);
      await wb.accept('Clear Fit Cache (');
      const dialog = s.page.locator('.monaco-dialog-box');
      await dialog.waitFor({ timeout: 10_000 });
      await dialog.getByRole('button', { name: 'Delete' }).click();
      await waitUntil(async () => !existsSync(cache), 10_000, 'the cache folder was not deleted');
    },
  );

  uiTest(
    () => wb,
    'two runs side by side',
    async () => {
      await runFromExperimentsView('quick-fgsm');
      await waitUntil(() => resultFiles().filter((f) => f.endsWith('.json')).length === 3, 60_000, 'the run did not finish');
      await s.page
        .locator('.notifications-toasts .notification-toast', { hasText: 'Robustness Lab: quick-fgsm' })
        .waitFor({ state: 'detached', timeout: 30_000 });
      // The newest run (FGSM, no defense) beside the defended one, from the Runs view's context menu.
      const runs = wb.view('Runs').locator('.monaco-list-row');
      await waitUntil(async () => (await runs.count()) === 3, 15_000, 'the Runs view did not list the new run');
      const newest = runs.and(s.page.locator('[data-index="0"]')); // DOM order is not list order
      assert.doesNotMatch(await newest.innerText(), /lesci/, 'the newest run has no defense');
      await wb.contextMenu(newest, 'Compare Runs');
      await wb.pick('with…', 'lesci');
      const frame = wb.resultsFrame();
      await frame.locator('h1', { hasText: 'Comparison' }).waitFor({ timeout: 20_000 });
      assert.equal(await frame.locator('.columns.compare .run').count(), 2);
      await wb.screenshot('05-compare');
    },
  );

  uiTest(
    () => wb,
    'the results panel exports Markdown with its chart and a self-contained HTML report',
    async () => {
      const frame = wb.resultsFrame();
      await frame.locator('vscode-button[data-action="export-html"]').click();
      await wb.accept('Export HTML Report'); // the suggested path in the results folder
      await wb.toast('Report written to').first().waitFor({ timeout: 15_000 });
      const html = resultFiles().find((f) => f.endsWith('.html'));
      assert.ok(html, `an HTML report in ${resultFiles()}`);
      const text = readFileSync(path.join(results(), html), 'utf8');
      assert.match(text, /<svg[^>]*>[\s\S]*Robust accuracy against epsilon/);
      assert.doesNotMatch(text, /<script|src="http/, 'self-contained, no scripts or remote resources');
      await frame.locator('vscode-button[data-action="export-markdown"]').click();
      await wb.accept('Export Markdown Report');
      await waitUntil(() => resultFiles().some((f) => f.endsWith('.md')), 15_000, 'no Markdown report');
      const md = resultFiles().find((f) => f.endsWith('.md'));
      const svg = resultFiles().find((f) => f.endsWith('-accuracy.svg'));
      assert.ok(svg, 'the chart beside the Markdown');
      assert.match(readFileSync(path.join(results(), md), 'utf8'), new RegExp(`!\\[Robust accuracy against epsilon\\]\\(${svg}\\)`));
    },
  );

  uiTest(
    () => wb,
    'the results panel comes back after a window reload',
    async () => {
      const reloaded = s.page.waitForEvent('load', { timeout: 60_000 });
      await wb.command('Developer: Reload Window');
      await reloaded;
      await s.page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await wb.resultsFrame().locator('h1', { hasText: 'Comparison' }).waitFor({ timeout: 60_000 });
      await wb.resultsFrame().locator('tr[data-key="clean accuracy"] td').first().waitFor();
      await wb.screenshot('06-restored-after-reload');
    },
  );

  uiTest(
    () => wb,
    'Evaluate Robustness on a model asks for data and attacks, then shows results',
    async () => {
      await wb.openSidebar();
      const before = resultFiles().filter((f) => f.endsWith('.json')).length;
      await wb.contextMenu(wb.treeItem('Models', /^fashion-cnn\.onnx/), 'Evaluate Robustness');
      // The defense wizard's evaluation steps, with Back.
      const step = (n) => `Evaluate fashion-cnn.onnx (${n}/7)`;
      await wb.pick(step(1), 't10k-images-idx3-ubyte.gz');
      await wb.accept(step(2)); // the matching labels file comes first
      await wb.accept(step(3)); // no sample limit of its own: the Sample Limit setting (300) applies
      await wb.accept(step(4)); // no open-set inputs
      await wb.accept(step(5)); // the quick strength preset
      await wb.pick(step(6), 'l2');
      await wb.accept(step(7)); // the suggested epsilons
      await wb.resultsFrame().locator('tr[data-key="clean accuracy"] td', { hasText: '/ 300)' }).waitFor({ timeout: 60_000 });
      assert.equal(resultFiles().filter((f) => f.endsWith('.json')).length, before + 1);
    },
  );

  uiTest(
    () => wb,
    'experiment files get validation from the contributed JSON schema',
    async () => {
      await wb
        .treeItem('Experiments', /^bad-norm/)
        .filter({ hasText: 'invalid' })
        .click();
      const editor = s.page.locator('.editor-instance .monaco-editor').first();
      await editor.locator('.squiggly-error, .squiggly-warning').first().waitFor({ timeout: 30_000 });
      await wb.screenshot('07-schema-validation');
    },
  );

  uiTest(
    () => wb,
    'cancelling a run stops it promptly and leaves no result file',
    async () => {
      const before = resultFiles();
      await runFromExperimentsView('long-pgd');
      const toast = wb.toast('Robustness Lab: long-pgd');
      await toast.filter({ hasText: /Attack pgd/ }).waitFor({ timeout: 60_000 });
      assert.equal(evaluationPids().length, 1, 'one evaluation process runs');
      // The notification and the status bar show the whole run's progress and the time left.
      await toast.filter({ hasText: /overall \d+%, about [\d.]+ (s|min|h) left/ }).waitFor({ timeout: 30_000 });
      const status = s.page.locator('.statusbar-item', { hasText: /Robustness Lab · \d+% · about/ });
      await status.waitFor({ timeout: 15_000 });
      await wb.screenshot('08-progress');
      const t0 = Date.now();
      await toast.getByRole('button', { name: 'Cancel' }).click();
      await wb.toast('evaluation cancelled; no result was written').waitFor({ timeout: 15_000 });
      await waitUntil(() => evaluationPids().length === 0, 10_000, 'the evaluation process is still running');
      const seconds = (Date.now() - t0) / 1000;
      assert.ok(seconds < 10, `cancelling took ${seconds} s`);
      assert.deepEqual(resultFiles(), before, 'no result (or temporary) file was added');
      await status.waitFor({ state: 'hidden', timeout: 10_000 }); // gone once nothing runs
      await wb.screenshot('09-cancelled');
    },
  );

  uiTest(
    () => wb,
    'a crash of the compute process is reported with its log, and the extension stays usable',
    async () => {
      const before = resultFiles();
      await runFromExperimentsView('long-pgd');
      await wb
        .toast('Robustness Lab: long-pgd')
        .filter({ hasText: /Attack pgd/ })
        .waitFor({ timeout: 60_000 });
      const [pid] = evaluationPids();
      assert.ok(pid, 'found the evaluation process');
      process.kill(pid, 'SIGSEGV'); // what a native fault in onnxruntime looks like from outside
      const error = wb.toast('compute process was killed by SIGSEGV, a crash in native code');
      await error.waitFor({ timeout: 15_000 });
      assert.match(await error.innerText(), /Last log: .*Attack pgd/);
      await s.page.waitForTimeout(500); // let the toast finish fading in
      await wb.screenshot('10-crash-reported');
      assert.deepEqual(resultFiles(), before);
      // Still usable: the next run works.
      await runFromExperimentsView('quick-fgsm');
      await waitUntil(() => resultFiles().length === before.length + 1, 60_000, 'the run after the crash did not complete');
      // Its results panel (200 samples; the last one shown had 300) opens before the next test types into the palette.
      await wb.resultsFrame().locator('tr[data-key="clean accuracy"] td', { hasText: '/ 200)' }).waitFor({ timeout: 30_000 });
    },
  );

  uiTest(
    () => wb,
    'the walkthrough opens the bundled demo',
    async () => {
      await wb.command('Welcome: Open Walkthrough...');
      await wb.pick(undefined, 'Get Started with Robustness Lab');
      const walkthrough = s.page.locator('.gettingStartedContainer');
      await walkthrough.getByText('Open the demo', { exact: true }).first().waitFor({ timeout: 20_000 });
      await s.page.waitForTimeout(500);
      // The earlier tests inserted a defense, ran experiments and showed results: those steps are ticked, the demo step not yet.
      const step = (title) => walkthrough.locator('.getting-started-step').filter({ hasText: title }).first();
      for (const title of ['Insert a defense', 'Run an experiment', 'Read, compare and export results'])
        await step(title).locator('.codicon-getting-started-step-checked').waitFor({ timeout: 10_000 });
      assert.equal(await step('Open the demo').locator('.codicon-getting-started-step-checked').count(), 0);
      await wb.screenshot('11-walkthrough');
      await walkthrough.getByRole('button', { name: 'Open Demo' }).first().click();
      const demo = path.join(s.workspace, 'robustness-lab-demo');
      await waitUntil(() => existsSync(path.join(demo, 'fashion-cnn-fgsm.rlab.json')), 20_000, 'the demo was not created');
      for (const f of ['fashion-cnn.onnx', 'data/t10k-images-idx3-ubyte.gz', 'data/train-labels-idx1-ubyte.gz']) assert.ok(existsSync(path.join(demo, f)), f);
      await wb.treeItem('Experiments', /^Demo: FGSM and PGD/).waitFor({ timeout: 20_000 });
      await wb.screenshot('12-demo-opened');
    },
  );

  uiTest(
    () => wb,
    'the Models view lists the TensorFlow.js demo model with its Keras layers and insertion points',
    async () => {
      await wb.openSidebar();
      // The tree renders only the rows in view: fold the ONNX demo model so the tfjs one is visible.
      const cnn = wb.treeItem('Models', /^fashion-cnn\.onnx, ONNX model$/); // not the walkthrough's copy of the demo
      if ((await cnn.getAttribute('aria-expanded')) === 'true') await cnn.locator('.monaco-tl-twistie').click();
      await wb.expand(wb.treeItem('Models', /^fashion-layers\/model\.json/));
      // Keras layer names, with their ops and NHWC-derived shapes (the first rows: the tree renders only what is in view).
      const pool1 = wb.treeItem('Models', /^pool1(?!\/)/);
      await pool1.waitFor({ timeout: 30_000 });
      assert.match(await pool1.innerText(), /MaxPool/);
      await wb.screenshot('01b-tfjs-model');
    },
  );

  uiTest(
    () => wb,
    'an experiment on the TensorFlow.js model defends it at a Keras layer and writes a result',
    async () => {
      const before = new Set(resultFiles());
      await runFromExperimentsView('tfjs-lesci');
      const fresh = () => resultFiles().find((f) => !before.has(f) && f.endsWith('.json'));
      await waitUntil(() => fresh() !== undefined, 120_000, 'the tfjs experiment wrote no result');
      const file = fresh();
      const result = JSON.parse(readFileSync(path.join(results(), file), 'utf8'));
      assert.match(result.model.path, /model\.json$/);
      assert.equal(result.defense.layer, 'pool2');
      assert.deepEqual([...new Set(result.attacks.map((a) => a.threat))].sort(), ['adaptive', 'transfer', 'whitebox']);
      // The run ends by opening its results; wait for them, or the panel takes the focus from the
      // next test's quick input (which then closes).
      await wb.resultsFrame().locator('tr[data-key="model"] td', { hasText: 'model.json' }).waitFor({ timeout: 30_000 });
    },
  );
  uiTest(
    () => wb,
    'Measure Isometry per Layer charts isometry against depth and puts a badge on each insertion point of the Models view',
    async () => {
      await wb.contextMenu(wb.treeItem('Models', /^fashion-cnn\.onnx, ONNX model$/), 'Measure Isometry per Layer');
      await wb.pick('Isometry of fashion-cnn.onnx (1/3)', 't10k-images-idx3-ubyte.gz');
      await wb.pick('Isometry of fashion-cnn.onnx (2/3)', 't10k-labels-idx1-ubyte.gz');
      await wb.type('Isometry of fashion-cnn.onnx (3/3)', '300');
      const frame = wb.resultsFrame();
      await frame.locator('canvas[aria-label="Isometry against depth"]').waitFor({ timeout: 90_000 });
      const file = resultFiles()
        .filter((f) => f.endsWith('.json'))
        .at(-1);
      const result = JSON.parse(readFileSync(path.join(results(), file), 'utf8'));
      assert.equal(result.isometry.pairsRequested, 300);
      // The badge: the within-class Pearson r of the layer, as the result file has it.
      const pool2 = result.isometry.layers.find((l) => l.tensor === '/features/features.5/MaxPool_output_0');
      await wb.expand(wb.treeItem('Models', /^fashion-cnn\.onnx, ONNX model$/));
      const row = await revealTreeItem('Models', /^\/features\/features\.5\/MaxPool/);
      await row
        .filter({ hasText: `iso r ${pool2.within.pearson.toFixed(2)}` })
        .first()
        .waitFor({ timeout: 15_000 });
      await wb.screenshot('03b-isometry');
      await revealTreeItem('Models', /^fashion-cnn\.onnx/);
    },
  );
  uiTest(
    () => wb,
    'Sweep Defense over Layers asks the defense and its parameters, the layers and the data, and charts accuracy against robustness',
    async () => {
      await wb.contextMenu(wb.treeItem('Models', /^fashion-cnn\.onnx, ONNX model$/), 'Sweep Defense over Layers');
      const title = 'Sweep layers of fashion-cnn.onnx';
      await wb.pick(`${title} (1/10)`, 'LESCI');
      // The defense's main parameters, as the defense wizard asks them.
      await wb.pick(`${title}: LESCI parameters (1/2)`, 'vote');
      await wb.type(`${title}: LESCI parameters (2/3)`, '5');
      await wb.type(`${title}: LESCI parameters (3/3)`, '16');
      // Two insertion points: untick all, then tick pool2 and fc1.
      const layers = await wb.waitForQuickInput(`${title} (2/10)`);
      // The header's box goes partial → all → none.
      const checkAll = layers.locator('.quick-input-header .monaco-checkbox, .quick-input-header .monaco-custom-toggle').first();
      const selected = async () => Number(/\d+/.exec(await layers.locator('.quick-input-count').innerText())?.[0] ?? 0);
      for (let i = 0; i < 3 && (await selected()) !== 0; i++) {
        await checkAll.click();
        await s.page.waitForTimeout(300); // the count follows the click
      }
      // Each one filtered to the top of the list first (rows out of view are not rendered), then ticked.
      const filter = layers.locator('input.input');
      for (const [i, tensor] of ['/features/features.5/MaxPool_output_0', '/classifier/classifier.2/Relu_output_0'].entries()) {
        await filter.fill(tensor);
        const row = layers.locator('.monaco-list-row', { hasText: tensor }).first();
        await row.waitFor({ timeout: 5000 });
        await row.locator('.monaco-checkbox, .monaco-custom-toggle').first().click();
        await waitUntil(async () => (await selected()) === i + 1, 5000, `${tensor} was not ticked`);
      }
      await filter.fill('');
      assert.equal(await selected(), 2);
      await wb.accept(`${title} (2/10)`);
      await wb.pick(`${title} (3/10)`, 'train-images-idx3-ubyte.gz');
      await wb.accept(`${title} (4/10)`);
      await wb.type(`${title} (5/10)`, '1000');
      await wb.pick(`${title} (6/10)`, 't10k-images-idx3-ubyte.gz');
      await wb.accept(`${title} (7/10)`);
      await wb.pick(`${title} (8/10)`, 'Choose attacks');
      await wb.accept(`${title} (8/10)`); // FGSM, preselected
      await wb.pick(`${title} (9/10)`, 'linf');
      await wb.type(`${title} (10/10)`, '0.05');
      const frame = wb.resultsFrame();
      await frame.locator('#sweep').waitFor({ timeout: 180_000 });
      const file = resultFiles()
        .filter((f) => f.endsWith('.json'))
        .at(-1);
      const result = JSON.parse(readFileSync(path.join(results(), file), 'utf8'));
      assert.deepEqual(
        result.sweep.layers.map((l) => l.tensor),
        ['/features/features.5/MaxPool_output_0', '/classifier/classifier.2/Relu_output_0'],
      );
      assert.equal(result.sweep.kind, 'lesci');
      assert.equal(result.sweep.params.mode, 'vote', JSON.stringify(result.sweep.params));
      await wb.screenshot('03c-sweep');
    },
  );
});

function resultOf(fn) {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
