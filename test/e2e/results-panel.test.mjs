// The results panel on a real defended run (written by the CLI before the workbench opens): the
// per-class table, the adversarial confusion matrices, examples grouped by threat model with the
// fooled ones marked, the dAE's main parameters first, its loss history as a small curve and the
// rest collapsed, and the placement in words. Screenshots go to test-artifacts/e2e/results-panel/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { ROOT } from '../../scripts/code-server.mjs';
import { openWorkbench, uiTest } from './harness.mjs';

let s;
let wb;
let result;

/** Scrolls the panel so that the top of `locator` shows just below the sticky header. */
async function scrollToTop(locator) {
  await locator.evaluate((el) => {
    el.scrollIntoView({ block: 'start' });
    window.scrollBy(0, -(document.querySelector('header')?.getBoundingClientRect().height ?? 0) - 8);
  });
}

describe('Results panel: per-sample views of a defended run', { timeout: 300_000 }, () => {
  before(async () => {
    s = await openWorkbench('results-panel', {
      setup: (ws) => {
        mkdirSync(path.join(ws, 'past-runs'));
        const out = path.join(ws, 'past-runs', 'dae-run.json');
        // A small real evaluation: a dAE at the input (its loss history), three threat models.
        execFileSync(
          process.execPath,
          [
            path.join(ROOT, 'bin', 'robustness-lab.js'),
            'evaluate',
            ...['--model', path.join(ws, 'fashion-cnn.onnx')],
            ...['--data', path.join(ws, 'data', 't10k-images-idx3-ubyte.gz'), '--labels', path.join(ws, 'data', 't10k-labels-idx1-ubyte.gz')],
            ...['--limit', '150', '--attack', 'fgsm,pgd', '--eps', '0.05,0.1', '--steps', '5', '--queries', '60', '--threads', '2'],
            ...['--defense', 'dae', '--layer', 'input', '--hidden', '32', '--epochs', '4', '--threat', 'transfer,bpda,gradient-free'],
            ...['--reference', path.join(ws, 'data', 'train-images-idx3-ubyte.gz'), '--reference-labels', path.join(ws, 'data', 'train-labels-idx1-ubyte.gz')],
            ...['--reference-limit', '600', '--cache-dir', path.join(ws, '.rlab-cache'), '--out', out],
          ],
          { stdio: 'pipe' },
        );
        result = JSON.parse(readFileSync(out, 'utf8'));
      },
      settings: { 'robustnessLab.resultsFolder': 'past-runs' },
    });
    wb = s.wb;
  });

  after(async () => {
    await s?.close();
  });

  uiTest(
    () => wb,
    'per class, adversarial confusion, grouped examples, main parameters and the loss curve',
    async () => {
      await wb.openSidebar();
      const item = wb.treeItem('Runs', /^fashion-cnn · dae/);
      await item.waitFor({ timeout: 30_000 });
      await item.click();
      const frame = wb.resultsFrame();
      await frame.locator('#per-class').waitFor({ timeout: 30_000 });

      // Per class: ten classes and the "all" row, whose last worst-case column is the defended worst case.
      const rows = frame.locator('#per-class vscode-table-row');
      assert.equal(await rows.count(), 11);
      const all = await rows.last().innerText();
      const worst = result.defense.worstCase.find((w) => w.eps === 0.1).accuracy;
      assert.ok(all.includes(`${(100 * worst).toFixed(1)}%`), `the "all" row ${JSON.stringify(all)} shows the defended worst case ${worst}`);
      await scrollToTop(frame.locator('#per-class'));
      await wb.screenshot('01-per-class');

      // Four confusion tables: clean and adversarial, without and with the defense.
      assert.equal(await frame.locator('table.confusion').count(), 4);
      await frame.locator('#adversarial-confusion-0 caption', { hasText: 'first attack' }).waitFor();
      await scrollToTop(frame.locator('#adversarial-confusion-0'));
      await wb.screenshot('02-adversarial-confusion');

      // Examples: one group without the defense and one per threat model, fooled ones marked.
      const groups = frame.locator('#examples .example-group');
      assert.equal(await groups.count(), 4);
      for (const threat of ['transfer', 'bpda', 'gradient-free'])
        await frame.locator(`#examples .example-group[data-target="defended"][data-threat="${threat}"] h4`, { hasText: threat }).waitFor();
      const fooled = result.examples.filter((e) => e.fooled).length;
      assert.ok(fooled > 0);
      assert.equal(await frame.locator('#examples .example[data-fooled="true"]').count(), fooled);
      await scrollToTop(frame.locator('#examples'));
      await wb.screenshot('03-examples-by-threat');

      // The defense: placement in words, the wizard's parameters first, the loss history as a curve, the rest collapsed.
      await frame.locator('#defense .placement', { hasText: "acts on the network's output" }).waitFor();
      const main = await frame.locator('#defense .main-params').innerText();
      for (const key of ['hidden', 'sigma', 'epochs', 'alpha']) assert.match(main, new RegExp(`\\b${key}\\b`));
      assert.doesNotMatch(main, /lossHistory|referenceCount/);
      await frame.locator('#defense figure.series[data-key="lossHistory"] svg.sparkline polyline').waitFor();
      const details = frame.locator('#defense details.other-params');
      assert.equal(await details.evaluate((d) => d.open), false, 'the other parameters start collapsed');
      await scrollToTop(frame.locator('#defense'));
      await wb.screenshot('04-defense-parameters');
      await details.locator('summary').click();
      await details.locator('vscode-table-row', { hasText: 'referenceCount' }).waitFor();
      await scrollToTop(details);
      await wb.screenshot('05-defense-other-parameters');
    },
  );
});
