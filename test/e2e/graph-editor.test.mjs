// The model graph editor and the Models tree's grouping and filter, in a real VS Code (code-server):
// open the demo model as a graph, see its insertion points, read a node's details, insert a defense
// from the graph and find it in the experiment file; a residual model shows its skip connection;
// a broken model file shows an error in the editor; in Restricted Mode the graph shows but
// inserting is refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { ROOT } from '../../scripts/code-server.mjs';
import { openWorkbench, uiTest } from './harness.mjs';

/** The residual test model of test/helpers/models.ts (a skip connection around two convolutions), written as ONNX. */
function writeResidualModel(file) {
  const script = `
    const { residualModel } = require('./test/helpers/models.ts');
    const { encodeModel } = require('./src/core/onnx/proto.ts');
    require('node:fs').writeFileSync(${JSON.stringify(file)}, encodeModel(residualModel().model));`;
  execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: 'inherit' });
}

function setup(ws) {
  mkdirSync(path.join(ws, 'resnet'));
  writeResidualModel(path.join(ws, 'resnet', 'residual.onnx'));
  // Hostile input: not a model at all.
  writeFileSync(path.join(ws, 'broken.onnx'), 'this is not a protobuf message \u0000\u0001\u0002');
}

async function waitUntil(check, timeout, message) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(message);
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

async function collapseModels(wb) {
  await wb.view('Models').locator('.pane-header').hover();
  await wb.view('Models').locator('.actions [aria-label^="Collapse All"]').click();
}

/** Opens a model of the Models view in the graph editor (its context menu) and returns the editor's webview frame. */
async function openGraph(wb, page, modelName) {
  // One webview at a time, so the frame found is this editor's.
  await wb.command('View: Close All Editors');
  await wb.openSidebar();
  // The tree renders only the rows in view: fold every model so the one wanted is on screen.
  await collapseModels(wb);
  const item = wb.treeItem('Models', new RegExp(`^${modelName.replace(/[./]/g, '\\$&')}`));
  await item.waitFor({ timeout: 30_000 });
  await wb.contextMenu(item, 'Open Model Graph');
  await page.locator('.tabs-container .tab', { hasText: path.basename(modelName) }).waitFor({ timeout: 15_000 });
  return wb.resultsFrame();
}

/**
 * Answers the insert-defense questions as a user would, whatever their order: training images and
 * labels for the reference set, test images and labels for the evaluation, 0.05 as the epsilon,
 * the suggestion everywhere else; until `done()`.
 */
async function answerInsertDefense(wb, done) {
  let lastImages = 'train';
  for (let step = 0; step < 30 && !done(); step++) {
    const widget = wb.quickInput();
    if (!(await widget.isVisible())) {
      await new Promise((r) => setTimeout(r, 300));
      continue;
    }
    const asked = [
      await widget
        .locator('.quick-input-title')
        .innerText()
        .catch(() => ''),
      await widget
        .locator('input.input')
        .getAttribute('placeholder')
        .catch(() => ''),
      await widget
        .locator('.quick-input-message')
        .innerText()
        .catch(() => ''),
    ].join(' | ');
    if (/reference images/i.test(asked)) {
      lastImages = 'train';
      await wb.pick(undefined, 'train-images-idx3-ubyte.gz');
    } else if (/test images|evaluate on/i.test(asked)) {
      lastImages = 't10k';
      await wb.pick(undefined, 't10k-images-idx3-ubyte.gz');
    } else if (/labels/i.test(asked)) {
      await wb.pick(undefined, `${lastImages}-labels-idx1-ubyte.gz`);
    } else if (/epsilon/i.test(asked)) {
      await wb.type(undefined, '0.05');
    } else if (/into which experiment/i.test(asked)) {
      await wb.pick(undefined, 'New experiment');
    } else if (/norm/i.test(asked)) {
      await wb.pick(undefined, 'linf');
    } else {
      await wb.accept(undefined);
    }
  }
}

let s;
let wb;

describe('The model graph editor (trusted workspace)', { timeout: 300_000 }, () => {
  before(async () => {
    s = await openWorkbench('graph-editor', { setup });
    wb = s.wb;
  });

  after(async () => {
    await s?.close();
  });

  uiTest(
    () => wb,
    'the Models view groups layers by module path and can show insertion points only',
    async () => {
      await wb.openSidebar();
      await wb.expand(wb.treeItem('Models', /^fashion-cnn\.onnx/));
      const features = wb.treeItem('Models', /^features\b/);
      await features.waitFor({ timeout: 30_000 });
      assert.match(await features.innerText(), /6 layers/);
      await wb.treeItem('Models', /^classifier\b/).waitFor();
      // Inside a module a layer shows the rest of its path; its accessible name stays the full node name.
      const pool = wb.treeItem('Models', /^\/features\/features\.5\/MaxPool\b/);
      assert.match(await pool.innerText(), /^features\.5\/MaxPool\s*MaxPool \[batch, 64, 4, 4\]/);
      await wb.screenshot('graph-01-models-grouped');

      // The residual model: the convolutions inside the block are no insertion points, and the filter hides them.
      await collapseModels(wb);
      await wb.expand(wb.treeItem('Models', /^residual\.onnx/));
      const inside = wb.treeItem('Models', /^Conv_8\b/);
      await inside.waitFor({ timeout: 30_000 });
      await wb.command('Robustness Lab: Show Insertion Points Only');
      await inside.waitFor({ state: 'detached', timeout: 10_000 });
      for (const name of [/^Relu_10\b/, /^Conv_13\b/]) assert.equal(await wb.treeItem('Models', name).count(), 0);
      for (const name of [/^Relu_5\b/, /^Add_15\b/]) await wb.treeItem('Models', name).waitFor({ timeout: 10_000 });
      await wb
        .treeItem('Models', /^Layers/)
        .filter({ hasText: 'shown alone' })
        .waitFor();
      // The view title's toggle now offers the way back.
      await wb.view('Models').locator('.pane-header').hover();
      await wb.view('Models').locator('.actions [aria-label="Show All Layers"]').waitFor({ state: 'attached', timeout: 10_000 });
      await wb.screenshot('graph-02-insertion-points-only');
      await wb.command('Robustness Lab: Show All Layers');
      await inside.waitFor({ timeout: 10_000 });
      await wb
        .treeItem('Models', /^residual\.onnx/)
        .locator('.monaco-tl-twistie')
        .click();
    },
  );

  uiTest(
    () => wb,
    'the demo model opens as a graph with its insertion points highlighted, and a node shows its details',
    async () => {
      const frame = await openGraph(wb, s.page, 'fashion-cnn.onnx');
      const nodes = frame.locator('g.node');
      await nodes.first().waitFor({ timeout: 60_000 });
      // input + 10 layers + output; every layer and the input are insertion points (a plain chain).
      assert.equal(await nodes.count(), 12);
      assert.equal(await frame.locator('g.node.insertion-point').count(), 11);
      assert.equal(await frame.locator('g.node.insertion-point .target-mark').count(), 11);
      assert.equal(await frame.locator('path.edge').count(), 11);
      assert.equal(await frame.locator('path.edge.skip').count(), 0);
      assert.match(await frame.locator('header .summary').innerText(), /10 layers · 317,066 params · 11 insertion points · 0 skip connections/);
      await s.page.waitForTimeout(300);
      await wb.screenshot('graph-03-demo-graph');

      await frame.locator('g.node[data-name="/features/features.5/MaxPool"]').click();
      const details = frame.locator('aside.details');
      await details.locator('h2', { hasText: 'MaxPool' }).waitFor({ timeout: 10_000 });
      const text = await details.innerText();
      assert.match(text, /Output shape\s+\[batch, 64, 4, 4\]/);
      assert.match(text, /Module\s+features\/features\.5/);
      // Attributes come from the file itself (the worker reads them).
      assert.match(text, /kernel_shape\s+\[2, 2\]/);
      assert.match(text, /Insertion point/);
      assert.equal(await frame.locator('g.node.selected').getAttribute('data-name'), '/features/features.5/MaxPool');
      assert.equal(await details.locator('button[data-action="insert-defense"]').isEnabled(), true);
      await wb.screenshot('graph-04-node-details');

      // A Gemm: its parameter count.
      await frame.locator('g.node[data-name="/classifier/classifier.1/Gemm"]').click();
      await details.locator('h2', { hasText: 'Gemm' }).waitFor();
      assert.match(await details.innerText(), /Parameters\s+262,400/);
    },
  );

  uiTest(
    () => wb,
    '"Insert defense here" runs the insert-defense flow for that layer and writes the experiment',
    async () => {
      const frame = await openGraph(wb, s.page, 'fashion-cnn.onnx');
      await frame.locator('g.node[data-name="/features/features.5/MaxPool"]').click();
      await frame.locator('aside.details button[data-action="insert-defense"]').click();
      // The flow of the tree's "Insert Defense at Layer", already aimed at the clicked layer.
      await wb.pick('Insert a defense after /features/features.5/MaxPool', 'LESCI');
      await wb.waitForQuickInput('Insert LESCI Defense after /features/features.5/MaxPool');
      await wb.screenshot('graph-05-insert-from-graph');
      const file = path.join(s.workspace, 'fashion-cnn-lesci.rlab.json');
      await answerInsertDefense(wb, () => existsSync(file));
      await waitUntil(() => readJson(file) !== undefined, 15_000, `${file} was not written`);
      const experiment = readJson(file);
      assert.equal(experiment.model, 'fashion-cnn.onnx');
      assert.equal(experiment.defense.kind, 'lesci');
      assert.equal(experiment.defense.layer, '/features/features.5/MaxPool_output_0', 'the tensor of the node clicked in the graph');
      assert.equal(experiment.defense.reference, 'data/train-images-idx3-ubyte.gz');
      await wb.treeItem('Experiments', /^fashion-cnn-lesci/).waitFor({ timeout: 15_000 });
      await wb.screenshot('graph-06-experiment-written');
    },
  );

  uiTest(
    () => wb,
    'a residual model shows its skip connection, and the nodes it bypasses are no insertion points',
    async () => {
      const frame = await openGraph(wb, s.page, 'residual.onnx');
      await frame.locator('g.node').first().waitFor({ timeout: 60_000 });
      assert.equal(await frame.locator('path.edge.skip').count(), 1, 'the identity branch is drawn and marked');
      for (const name of ['Conv_8', 'Relu_10', 'Conv_13']) {
        assert.equal(await frame.locator(`g.node[data-name="${name}"]`).getAttribute('class'), 'node layer', `${name} is not highlighted`);
      }
      assert.match(await frame.locator(`g.node[data-name="Add_15"]`).getAttribute('class'), /insertion-point/);
      await frame.locator('g.node[data-name="Conv_8"]').click();
      const details = frame.locator('aside.details');
      await details.getByText('Not an insertion point').waitFor({ timeout: 10_000 });
      assert.equal(await details.locator('button[data-action="insert-defense"]').count(), 0);
      await wb.screenshot('graph-07-residual-skip');
    },
  );

  uiTest(
    () => wb,
    'a file that is not a model shows the error in the editor',
    async () => {
      const frame = await openGraph(wb, s.page, 'broken.onnx');
      const error = frame.locator('.error[role="alert"]');
      await error.waitFor({ timeout: 60_000 });
      assert.match(await error.innerText(), /Cannot show broken\.onnx/);
      await wb.screenshot('graph-08-broken-model');
    },
  );
});

describe('The model graph editor in Restricted Mode', { timeout: 200_000 }, () => {
  let r;
  before(async () => {
    r = await openWorkbench('graph-editor-restricted', { trusted: false });
  });

  after(async () => {
    await r?.close();
  });

  uiTest(
    () => r?.wb,
    'the graph shows, and "Insert defense here" is disabled with the reason',
    async () => {
      const frame = await openGraph(r.wb, r.page, 'fashion-cnn.onnx');
      await frame.locator('g.node').first().waitFor({ timeout: 60_000 });
      assert.equal(await frame.locator('g.node.insertion-point').count(), 11);
      await frame.locator('g.node[data-name="/features/features.2/MaxPool"]').click();
      const details = frame.locator('aside.details');
      await details.getByText('Restricted Mode').waitFor({ timeout: 10_000 });
      assert.equal(await details.locator('button[data-action="insert-defense"]').isDisabled(), true);
      await r.wb.screenshot('graph-09-restricted');
    },
  );
});
