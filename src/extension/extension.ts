/**
 * The VS Code front end. Kept thin: views list files, commands gather inputs with quick picks,
 * the compute process (dist/worker.js) does everything that touches onnxruntime, and the results
 * webview renders RunResult files. The engine is never imported here.
 */
import path from 'node:path';
import * as vscode from 'vscode';
import type { DefensePlan } from '../protocol/experiment';
import type { PanelRun } from '../protocol/webview-messages';
import { basename } from '../report/analysis';
import { DEFENSES, insertDefense } from './defense-wizard';
import { openDemo } from './demo';
import { EXPERIMENT_SUFFIX, experimentToConfig } from './experiment-file';
import { experimentName, ExperimentsProvider, readExperiment, type ExperimentNode } from './experiments-view';
import { exportReport, pickReportFormat } from './export';
import { insertionTarget, ModelsProvider, type InsertionTarget, type ModelTreeNode } from './models-view';
import { pickAttacks, pickDataset, pickLabels, pickModel } from './pickers';
import { panelRun, ResultsPanel, type PanelActions } from './results-panel';
import { Runner } from './runner';
import { loadRun, RunsProvider, type RunNode } from './runs-view';
import { resultsFolder } from './settings';
import { explainRestrictedMode, requireTrust, RESTRICTED_MESSAGE } from './trust';
import { Inspector } from './worker-client';

/** Tree nodes, explorer and editor arguments all carry a Uri one way or another. */
function uriOf(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  const uri = (arg as { uri?: unknown } | undefined)?.uri;
  return uri instanceof vscode.Uri ? uri : undefined;
}

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Robustness Lab', { log: true });
  const workerScript = vscode.Uri.joinPath(context.extensionUri, 'dist', 'worker.js').fsPath;
  const inspector = new Inspector(workerScript, (line) => output.warn(`[inspector] ${line}`));
  const runner = new Runner(context, output, workerScript);
  const models = new ModelsProvider(context, inspector);
  const experiments = new ExperimentsProvider();
  const runs = new RunsProvider(context);
  const modelsView = vscode.window.createTreeView('robustnessLab.models', { treeDataProvider: models, showCollapseAll: true });
  const experimentsView = vscode.window.createTreeView('robustnessLab.experiments', { treeDataProvider: experiments });
  const runsView = vscode.window.createTreeView('robustnessLab.runs', { treeDataProvider: runs, canSelectMany: true });
  context.subscriptions.push(
    explainRestrictedMode(modelsView, RESTRICTED_MESSAGE),
    explainRestrictedMode(runsView, 'Restricted Mode: past runs can be read; running needs a trusted workspace.'),
  );
  context.subscriptions.push(output, inspector, runner, models, experiments, runs, modelsView, experimentsView, runsView);
  context.subscriptions.push(runner.onDidFinish(() => runs.refresh()));
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration('robustnessLab.resultsFolder') && runs.rewatch()),
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      runs.rewatch();
      models.refresh();
      experiments.refresh();
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => runs.refresh()),
  );

  const panelActions: PanelActions = {
    exportReport: async (shown, format) => void (await exportReport(shown, format, resultsFolder(context, fileUri(shown[0])))),
    pickRunToCompare: (current) => pickRun('Compare with which run?', current.file),
    log: (message) => output.warn(message),
  };
  context.subscriptions.push(ResultsPanel.register(context.extensionUri, panelActions));

  const showRuns = (shown: PanelRun[]) => ResultsPanel.show(context.extensionUri, panelActions, shown);

  /** A run chosen from the Runs view's list (newest first). */
  async function pickRun(title: string, exclude?: string): Promise<PanelRun | undefined> {
    const list = (await runs.listRuns()).filter((n) => n.result && n.uri.fsPath !== exclude);
    if (list.length === 0) {
      void vscode.window.showInformationMessage('Robustness Lab: no other runs in the results folder yet. Evaluate a model or run an experiment first.');
      return undefined;
    }
    const choice = await vscode.window.showQuickPick(
      list.map((node) => {
        const item = runs.getTreeItem(node);
        return { label: String(item.label), description: String(item.description ?? ''), detail: vscode.workspace.asRelativePath(node.uri), node };
      }),
      { title, matchOnDetail: true },
    );
    return choice ? loadRun(choice.node.uri) : undefined;
  }

  async function runExperimentFile(uri: vscode.Uri): Promise<void> {
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    if (doc?.isDirty) await doc.save();
    let node: ExperimentNode;
    try {
      node = { uri, experiment: await readExperiment(uri) };
    } catch (e) {
      void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`, 'Open File').then((c) => c && vscode.window.showTextDocument(uri));
      return;
    }
    const outcome = await runner.run({ title: experimentName(node), config: experimentToConfig(node.experiment!, uri.fsPath), scope: uri });
    if (outcome) showRuns([panelRun(outcome.file, outcome.result)]);
  }

  async function chooseExperiment(arg: unknown, filter: (n: ExperimentNode) => boolean, title: string): Promise<vscode.Uri | undefined> {
    const given = uriOf(arg);
    if (given) return given;
    const active = vscode.window.activeTextEditor?.document.uri;
    if (active?.fsPath.endsWith(EXPERIMENT_SUFFIX)) return active;
    const list = (await experiments.listExperiments()).filter(filter);
    if (list.length === 0) {
      void vscode.window.showInformationMessage(`Robustness Lab: no matching experiment files (*${EXPERIMENT_SUFFIX}) in the workspace. Insert a defense at a layer in the Models view to create one.`);
      return undefined;
    }
    if (list.length === 1) return list[0].uri;
    const choice = await vscode.window.showQuickPick(
      list.map((n) => ({ label: experimentName(n), description: vscode.workspace.asRelativePath(n.uri), uri: n.uri })),
      { title },
    );
    return choice?.uri;
  }

  /** The layer to insert at: from the tree, or picked among the model's insertion points. */
  async function chooseInsertionTarget(arg: unknown): Promise<InsertionTarget | undefined> {
    const node = arg as ModelTreeNode | undefined;
    if (node && typeof node === 'object' && 'kind' in node) {
      const target = insertionTarget(node);
      if (target) return target;
    }
    const model = uriOf(arg) ?? (await pickModel(await models.findModels(), 'Insert a defense into which model?'));
    if (!model) return undefined;
    const summary = await vscode.window.withProgress({ location: { viewId: 'robustnessLab.models' }, title: 'Inspecting' }, () => models.inspect(model));
    const points = [
      ...summary.inputs.filter((i) => summary.insertionTensors.includes(i.name)).map((i) => ({ label: `$(target) input ${i.name}`, description: `[${i.shape.join(', ')}]`, tensor: i.name, name: `input ${i.name}` })),
      ...summary.layers
        .filter((l) => l.insertionPoint)
        .map((l) => ({ label: `$(target) ${l.name}`, description: `${l.op} [${l.shape?.join(', ') ?? '?'}]`, tensor: l.outputs[0], name: l.name })),
    ];
    const choice = await vscode.window.showQuickPick(points, { title: `Insert a defense into ${basename(model.fsPath)}`, placeHolder: 'After which layer? (insertion points only)' });
    return choice && { model, tensor: choice.tensor, label: choice.name };
  }

  async function insertAt(kind: DefensePlan['kind'] | undefined, arg: unknown): Promise<void> {
    let target: InsertionTarget | undefined;
    try {
      target = await chooseInsertionTarget(arg);
    } catch (e) {
      return void vscode.window.showErrorMessage(`Robustness Lab: cannot inspect the model: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!target) return;
    const chosenKind =
      kind ??
      (
        await vscode.window.showQuickPick(
          (Object.keys(DEFENSES) as DefensePlan['kind'][]).map((k) => ({ label: DEFENSES[k].title, description: DEFENSES[k].description, defense: k })),
          { title: `Insert a defense after ${target.label}`, placeHolder: 'Which defense?' },
        )
      )?.defense;
    if (!chosenKind) return;
    try {
      const file = await insertDefense(chosenKind, target, await experiments.listExperiments());
      if (!file) return;
      experiments.refresh();
      void vscode.window
        .showInformationMessage(`Defense written to ${vscode.workspace.asRelativePath(file)}.`, 'Run Experiment')
        .then((choice) => choice && runExperimentFile(file));
    } catch (e) {
      void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
    }
  }

  const register = (id: string, fn: Parameters<typeof vscode.commands.registerCommand>[1]) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  register('robustnessLab.openModel', async (arg?: unknown) => {
    const uri = uriOf(arg) ?? (await vscode.window.showOpenDialog({ title: 'Open Model', canSelectMany: false, filters: { 'ONNX models': ['onnx'] } }))?.[0];
    if (!uri) return;
    const node = await models.open(uri);
    await vscode.commands.executeCommand('robustnessLab.models.focus');
    await modelsView.reveal(node, { expand: true, select: true, focus: true });
  });
  register('robustnessLab.insertDefense', (arg?: unknown) => insertAt(undefined, arg));
  register('robustnessLab.insertLesci', (arg?: unknown) => insertAt('lesci', arg));
  register('robustnessLab.insertDae', (arg?: unknown) => insertAt('dae', arg));
  register('robustnessLab.insertRetrieval', (arg?: unknown) => insertAt('retrieval', arg));

  register('robustnessLab.evaluateModel', async (arg?: unknown) => {
    if (!requireTrust('evaluate a model')) return; // before asking for anything
    const model = uriOf(arg) ?? (await pickModel(await models.findModels(), 'Evaluate Robustness'));
    if (!model) return;
    const title = `Evaluate ${basename(model.fsPath)}`;
    const step = (n: number) => ({ title, step: n, totalSteps: 5 });
    const data = await pickDataset(step(1), 'Test images to evaluate on', /test|t10k|val/i);
    if (!data) return;
    const labels = await pickLabels(step(2), data);
    if (!labels) return;
    const attacks = await pickAttacks(step(3));
    if (!attacks) return;
    const outcome = await runner.run({
      title: basename(model.fsPath),
      config: { model: model.fsPath, data: data.fsPath, labels: labels.uri?.fsPath, attacks: attacks.plan },
      scope: model,
    });
    if (outcome) showRuns([panelRun(outcome.file, outcome.result)]);
  });

  register('robustnessLab.runExperiment', async (arg?: unknown) => {
    const uri = await chooseExperiment(arg, (n) => !!n.experiment, 'Run which experiment?');
    if (uri) await runExperimentFile(uri);
  });

  register('robustnessLab.exportDefendedModel', async (arg?: unknown) => {
    const uri = await chooseExperiment(arg, (n) => !!n.experiment?.defense, 'Export the defended model of which experiment?');
    if (!uri) return;
    let experiment;
    try {
      experiment = await readExperiment(uri);
    } catch (e) {
      return void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
    }
    if (!experiment.defense) return void vscode.window.showWarningMessage(`Robustness Lab: ${basename(uri.fsPath)} has no defense to export; insert one at a layer first.`);
    const model = path.resolve(path.dirname(uri.fsPath), experiment.model);
    const out = await vscode.window.showSaveDialog({
      title: 'Export Defended Model',
      defaultUri: vscode.Uri.file(model.replace(/\.onnx$/i, `-${experiment.defense.kind}.onnx`)),
      filters: { 'ONNX models': ['onnx'] },
    });
    if (!out) return;
    if (await runner.exportDefended({ title: basename(out.fsPath), config: experimentToConfig(experiment, uri.fsPath), scope: uri }, out)) {
      models.refresh();
      void vscode.window.showInformationMessage(`Defended model written to ${vscode.workspace.asRelativePath(out)}.`);
    }
  });

  register('robustnessLab.showResults', async (arg?: unknown) => {
    const uri = uriOf(arg);
    try {
      const run = uri ? await loadRun(uri) : await pickRun('Show the results of which run?');
      if (run) showRuns([run]);
    } catch (e) {
      void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
    }
  });

  register('robustnessLab.compareRuns', async (arg?: unknown, selected?: RunNode[]) => {
    try {
      const chosen = (selected?.length === 2 ? selected : [arg]).map(uriOf).filter((u): u is vscode.Uri => !!u);
      const first = chosen[0] ? await loadRun(chosen[0]) : await pickRun('Compare Runs: first run');
      if (!first) return;
      const second = chosen[1] ? await loadRun(chosen[1]) : await pickRun(`Compare ${first.name} with…`, first.file);
      if (second) showRuns([first, second]);
    } catch (e) {
      void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
    }
  });

  register('robustnessLab.exportReport', async (arg?: unknown) => {
    // A run from the tree or explorer, else what the results panel shows, else a run the user picks.
    const uri = uriOf(arg);
    let shown: PanelRun[];
    try {
      const picked = uri ? await loadRun(uri) : ResultsPanel.active ? undefined : await pickRun('Export the report of which run?');
      shown = picked ? [picked] : [...(ResultsPanel.active?.shownRuns ?? [])];
    } catch (e) {
      return void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
    }
    if (shown.length === 0) return;
    const format = await pickReportFormat();
    if (format) await exportReport(shown, format, resultsFolder(context, fileUri(shown[0])));
  });

  register('robustnessLab.cancelEvaluation', () => runner.cancel());
  register('robustnessLab.refresh', () => {
    models.refresh();
    experiments.refresh();
    runs.refresh();
  });
  register('robustnessLab.openDemo', () => openDemo(context.extensionUri));
  register('robustnessLab.showLog', () => output.show());
  register('robustnessLab.openRunJson', (arg?: unknown) => {
    const uri = uriOf(arg);
    if (uri) void vscode.window.showTextDocument(uri);
  });
}

function fileUri(run: PanelRun | undefined): vscode.Uri | undefined {
  return run?.file ? vscode.Uri.file(run.file) : undefined;
}

export function deactivate(): void {}
