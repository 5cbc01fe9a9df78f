// Restricted Mode (an untrusted workspace): models can be inspected but not run, and the UI says why.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { defendedRunResult } from './fixtures.mjs';
import { openWorkbench, uiTest } from './harness.mjs';

const QUICK = {
  name: 'quick-fgsm',
  model: 'fashion-cnn.onnx',
  data: 'data/t10k-images-idx3-ubyte.gz',
  labels: 'data/t10k-labels-idx1-ubyte.gz',
  limit: 200,
  attacks: { names: ['fgsm'], eps: [0.05], norm: 'linf' },
};

let s;
let wb;

describe('Robustness Lab in Restricted Mode', { timeout: 240_000 }, () => {
  before(async () => {
    s = await openWorkbench('restricted', {
      trusted: false,
      setup: (ws) => {
        writeFileSync(path.join(ws, 'quick-fgsm.rlab.json'), JSON.stringify(QUICK, null, 2));
        mkdirSync(path.join(ws, 'past-runs'));
        writeFileSync(path.join(ws, 'past-runs', 'dae-run.json'), JSON.stringify(defendedRunResult(ws)));
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
    'models can be inspected, and the views say why they cannot run',
    async () => {
      await wb.openSidebar();
      // The Models view's message and the Runs view's welcome explain Restricted Mode.
      await wb.view('Models').locator('.message', { hasText: 'Restricted Mode: models can be inspected but not evaluated' }).waitFor({ timeout: 20_000 });
      await wb.view('Runs').locator('.message', { hasText: 'past runs can be read; running needs a trusted workspace' }).waitFor({ timeout: 10_000 });
      await wb.expand(wb.treeItem('Models', /^fashion-cnn\.onnx/));
      await wb.treeItem('Models', /^\/features\/features\.0\/Conv\b/).waitFor({ timeout: 30_000 });
      await wb.screenshot('01-restricted-inspect');
    },
  );

  uiTest(
    () => wb,
    'running an experiment is refused with the reason and a way to trust the workspace',
    async () => {
      const item = wb.treeItem('Experiments', /^quick-fgsm/);
      await item.waitFor({ timeout: 20_000 });
      await wb.contextMenu(item, 'Run Experiment');
      const warning = wb.toast('cannot evaluate a model in Restricted Mode');
      await warning.waitFor({ timeout: 15_000 });
      await warning.getByRole('button', { name: 'Manage Workspace Trust' }).waitFor();
      await s.page.waitForTimeout(500);
      await wb.screenshot('02-restricted-refused');
      await warning
        .locator('.codicon-notifications-clear, .codicon-close')
        .first()
        .click()
        .catch(() => {});
    },
  );

  uiTest(
    () => wb,
    'Evaluate Robustness on a model is refused before asking for anything',
    async () => {
      await wb.contextMenu(wb.treeItem('Models', /^fashion-cnn\.onnx/), 'Evaluate Robustness');
      await wb.toast('cannot evaluate a model in Restricted Mode').waitFor({ timeout: 15_000 });
      assert.equal(await wb.quickInput().isVisible(), false, 'no dataset picker was shown');
      assert.equal(existsSync(path.join(s.workspace, 'rlab-results')), false, 'nothing was written');
    },
  );

  uiTest(
    () => wb,
    'past results can be read: a defended run with its tables and example images',
    async () => {
      await wb.treeItem('Runs', /^fashion-cnn · dae/).click();
      const frame = wb.resultsFrame();
      await frame.locator('tr[data-key="defense"] td', { hasText: 'dae after /features/features.5/MaxPool_output_0' }).waitFor({ timeout: 30_000 });
      await frame.locator('tr[data-key="defended clean accuracy"] td', { hasText: '87.50%' }).waitFor();
      await frame.locator('tr[data-key="verdict"] td', { hasText: 'holds' }).waitFor();
      await frame.locator('h4', { hasText: 'dAE thresholds (clean)' }).waitFor();
      await frame.locator('#fooling vscode-table-row', { hasText: '30.00%' }).waitFor(); // dAE-scaled fooling rate at 0.9
      assert.equal(await frame.locator('table.confusion').count(), 2, 'clean and defended confusion matrices');
      assert.equal(await frame.locator('.example').count(), 4);
      assert.equal(await frame.locator('.example canvas.pixels').count(), 12);
      // Worst case with the defense: the lowest over threat models (bpda at 0.1: 22%).
      await frame.locator('vscode-table-row', { hasText: '22.00%' }).filter({ hasText: 'bpda' }).first().waitFor();
      await wb.screenshot('03-defended-run');
      await frame.locator('#examples').scrollIntoViewIfNeeded();
      await wb.screenshot('04-defended-run-examples');
    },
  );
});
