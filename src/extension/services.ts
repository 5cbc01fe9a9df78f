/**
 * What the commands share: the output channel, the compute processes (the shared inspector and
 * the runner of evaluations), the three views and their providers, the results panel and the
 * trust check. Created once by activate() and handed to every command family in
 * src/extension/commands/.
 */
import * as vscode from 'vscode';
import type { PanelRun } from '../protocol/webview-messages';
import { ExperimentsProvider, type ExperimentNode } from './experiments-view';
import { exportReport } from './export';
import { ModelsProvider, type ModelTreeNode } from './models-view';
import { ResultsPanel, type PanelActions } from './results-panel';
import { Runner } from './runner';
import { RunsProvider, type RunNode } from './runs-view';
import { resultsFolder } from './settings';
import { explainRestrictedMode, requireTrust, RESTRICTED_MESSAGE } from './trust';
import { completeStep } from './walkthrough';
import { Inspector } from './worker-client';

export interface Services {
  readonly context: vscode.ExtensionContext;
  /** The *Robustness Lab* output channel. */
  readonly output: vscode.LogOutputChannel;
  /** Runs evaluations and exports in their own compute process. */
  readonly runner: Runner;
  /** Model inspection and dataset checks in a shared compute process (allowed in Restricted Mode). */
  readonly inspector: Inspector;
  readonly models: ModelsProvider;
  readonly experiments: ExperimentsProvider;
  readonly runs: RunsProvider;
  readonly modelsView: vscode.TreeView<ModelTreeNode>;
  readonly experimentsView: vscode.TreeView<ExperimentNode>;
  readonly runsView: vscode.TreeView<RunNode>;
  /** Shows one run, or two side by side, in the results panel (creating it or bringing it to the front). */
  showRuns(shown: PanelRun[]): void;
  /** True when running is allowed; otherwise says why (Restricted Mode) and offers to manage trust. */
  requireTrust(action: string): boolean;
}

/** A family of commands: command id → handler. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- VS Code passes each command its own argument types
export type Commands = Record<string, (...args: any[]) => unknown>;

/** Creates the services; everything that needs disposing goes into the context's subscriptions. */
export function createServices(context: vscode.ExtensionContext): Services {
  const output = vscode.window.createOutputChannel('Robustness Lab', { log: true });
  const workerScript = vscode.Uri.joinPath(context.extensionUri, 'dist', 'worker.js').fsPath;
  // Inspection runs even in Restricted Mode: it may read only inside the workspace folders.
  const inspector = new Inspector(
    workerScript,
    (line) => output.warn(`[inspector] ${line}`),
    () => {
      const roots = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
      return { cwd: roots[0], roots };
    },
  );
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
  showResultsFolder(context, runsView);

  const panelActions: PanelActions = {
    exportReport: async (shown, format) => void (await exportReport(shown, format, reportFolder(context, shown))),
    pickRunToCompare: (current) => runs.pickRun('Compare with which run?', current.file),
    log: (message) => output.warn(message),
  };
  context.subscriptions.push(ResultsPanel.register(context.extensionUri, panelActions));
  const showRuns = (shown: PanelRun[]) => {
    completeStep('resultsShown');
    void ResultsPanel.show(context.extensionUri, panelActions, shown);
  };

  return { context, output, runner, inspector, models, experiments, runs, modelsView, experimentsView, runsView, showRuns, requireTrust };
}

/** Where a report of these runs is saved by default: the results folder of the first run's file. */
export function reportFolder(context: vscode.ExtensionContext, shown: readonly PanelRun[]): vscode.Uri {
  const file = shown[0]?.file;
  return resultsFolder(context, file ? vscode.Uri.file(file) : undefined);
}

/** Keeps the views current: new runs, the results folder setting, workspace folders, trust. */
export function refreshViewsOnChanges(s: Services): void {
  s.context.subscriptions.push(
    s.runner.onDidFinish(() => {
      completeStep('runFinished');
      s.runs.refresh();
    }),
  );
  s.context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration('robustnessLab.resultsFolder') && s.runs.rewatch()),
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      s.runs.rewatch();
      s.models.refresh();
      s.experiments.refresh();
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => s.runs.refresh()),
  );
}

/** Where results go, beside the Runs view's title (and again when the setting changes). */
function showResultsFolder(context: vscode.ExtensionContext, view: vscode.TreeView<RunNode>): void {
  const update = () => (view.description = `→ ${vscode.workspace.asRelativePath(resultsFolder(context))}`);
  update();
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration('robustnessLab.resultsFolder') && update()),
    vscode.workspace.onDidChangeWorkspaceFolders(update),
  );
}

/** Registers a family of commands. */
export function registerCommands(s: Services, commands: Commands): void {
  for (const [id, handler] of Object.entries(commands)) s.context.subscriptions.push(vscode.commands.registerCommand(id, handler));
}

/** Tree nodes, explorer and editor arguments all carry a Uri one way or another. */
export function uriOf(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  const uri = (arg as { uri?: unknown } | undefined)?.uri;
  return uri instanceof vscode.Uri ? uri : undefined;
}
