/**
 * The VS Code front end. Kept thin: views list files, commands gather inputs with quick picks,
 * the compute process (dist/worker.js) does everything that touches onnxruntime, and the results
 * webview renders RunResult files. The engine is never imported here.
 *
 * activate() only wires: the shared services (services.ts) and the command families, one file
 * each under commands/.
 */
import type * as vscode from 'vscode';
import { cacheCommands } from './commands/cache';
import { demoCommands } from './commands/demo';
import { evaluateModelCommands } from './commands/evaluate-model';
import { exportDefendedModelCommands } from './commands/export-defended-model';
import { insertDefenseCommands } from './commands/insert-defense';
import { isometryCommands } from './commands/isometry';
import { miscCommands } from './commands/misc';
import { openModelCommands } from './commands/open-model';
import { resultsCommands, runsTableDeps } from './commands/results';
import { runExperimentCommands } from './commands/run-experiment';
import { sweepCommands } from './commands/sweep';
import { registerGraphEditor } from './graph-editor';
import { RunsTablePanel } from './runs-table';
import { createServices, refreshViewsOnChanges, registerCommands } from './services';

export function activate(context: vscode.ExtensionContext): void {
  const services = createServices(context);
  refreshViewsOnChanges(services);
  for (const family of [
    openModelCommands,
    insertDefenseCommands,
    evaluateModelCommands,
    isometryCommands,
    sweepCommands,
    runExperimentCommands,
    exportDefendedModelCommands,
    resultsCommands,
    miscCommands,
    cacheCommands,
    demoCommands,
  ]) {
    registerCommands(services, family(services));
  }
  registerGraphEditor(services);
  context.subscriptions.push(RunsTablePanel.register(runsTableDeps(services)));
}

export function deactivate(): void {}
