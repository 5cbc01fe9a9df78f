// Runs inside VS Code's extension host (loaded by @vscode/test-electron). Plain node:assert, no
// test framework: each check throws on failure, which fails the run.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

const workspace = process.env.RLAB_TEST_WORKSPACE;
const results = path.join(workspace, 'rlab-results');
const resultFiles = () => (fs.existsSync(results) ? fs.readdirSync(results).sort() : []);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const checks = {
  async 'the extension activates lazily, on its first command'() {
    const ext = vscode.extensions.getExtension('robustness-lab.robustness-lab');
    assert.ok(ext, 'extension installed');
    assert.equal(ext.isActive, false, 'not active before it is used');
    await vscode.commands.executeCommand('robustnessLab.refresh');
    assert.equal(ext.isActive, true);
  },
  async 'every contributed command is registered'() {
    const ext = vscode.extensions.getExtension('robustness-lab.robustness-lab');
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const c of ext.packageJSON.contributes.commands) assert.ok(registered.has(c.command), `${c.command} registered`);
  },
  async 'Run Experiment writes a result file and opens the results panel'() {
    await vscode.commands.executeCommand('robustnessLab.runExperiment', vscode.Uri.file(path.join(workspace, 'quick.rlab.json')));
    const files = resultFiles().filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1, `one result, found ${files}`);
    const result = JSON.parse(fs.readFileSync(path.join(results, files[0]), 'utf8'));
    assert.equal(result.clean.count, 200);
    assert.ok(result.clean.accuracy > 0.8);
    assert.equal(result.attacks.length, 1);
    const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs);
    assert.ok(
      tabs.some((t) => t.input instanceof vscode.TabInputWebview && t.label.startsWith('Results')),
      'results panel open',
    );
  },
  async 'Cancel Evaluation stops a run and leaves no result file'() {
    const before = resultFiles();
    const run = vscode.commands.executeCommand('robustnessLab.runExperiment', vscode.Uri.file(path.join(workspace, 'long.rlab.json')));
    await sleep(4000);
    const t0 = Date.now();
    await vscode.commands.executeCommand('robustnessLab.cancelEvaluation');
    await run;
    assert.ok(Date.now() - t0 < 10_000, 'stopped within 10 s');
    assert.deepEqual(resultFiles(), before);
  },
};

exports.run = async function run() {
  const failures = [];
  for (const [name, check] of Object.entries(checks)) {
    try {
      await check();
      console.log(`ok - ${name}`);
    } catch (e) {
      failures.push(name);
      console.log(`not ok - ${name}\n${e && e.stack}`);
    }
  }
  if (failures.length) throw new Error(`${failures.length} check(s) failed: ${failures.join('; ')}`);
};
