/** Run Experiment: an experiment file (*.rlab.json) from the tree, the editor, or a pick. */
import * as vscode from 'vscode';
import { EXPERIMENT_SUFFIX, experimentToConfig } from '../../protocol/experiment-file';
import { experimentName, readExperiment, type ExperimentNode } from '../experiments-view';
import { panelRun } from '../results-panel';
import { uriOf, type Commands, type Services } from '../services';

/** Saves the file if it has unsaved changes, runs it, and shows the result. */
export async function runExperimentFile(s: Services, uri: vscode.Uri): Promise<void> {
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  if (doc?.isDirty) await doc.save();
  let node: ExperimentNode;
  try {
    node = { uri, experiment: await readExperiment(uri) };
  } catch (e) {
    void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`, 'Open File').then((c) => c && vscode.window.showTextDocument(uri));
    return;
  }
  const outcome = await s.runner.run({ title: experimentName(node), config: experimentToConfig(node.experiment!, uri.fsPath), scope: uri });
  if (outcome) s.showRuns([panelRun(outcome.file, outcome.result)]);
}

/** The experiment a command is about: its argument, else the active editor's file, else the only match, else a pick. */
export async function chooseExperiment(s: Services, arg: unknown, filter: (n: ExperimentNode) => boolean, title: string): Promise<vscode.Uri | undefined> {
  const given = uriOf(arg);
  if (given) return given;
  const active = vscode.window.activeTextEditor?.document.uri;
  if (active?.fsPath.endsWith(EXPERIMENT_SUFFIX)) return active;
  const list = (await s.experiments.listExperiments()).filter(filter);
  if (list.length === 0) {
    void vscode.window.showInformationMessage(
      `Robustness Lab: no matching experiment files (*${EXPERIMENT_SUFFIX}) in the workspace. Insert a defense at a layer in the Models view to create one.`,
    );
    return undefined;
  }
  if (list.length === 1) return list[0].uri;
  const choice = await vscode.window.showQuickPick(
    list.map((n) => ({ label: experimentName(n), description: vscode.workspace.asRelativePath(n.uri), uri: n.uri })),
    { title },
  );
  return choice?.uri;
}

export function runExperimentCommands(s: Services): Commands {
  return {
    'robustnessLab.runExperiment': async (arg?: unknown) => {
      const uri = await chooseExperiment(s, arg, (n) => !!n.experiment, 'Run which experiment?');
      if (uri) await runExperimentFile(s, uri);
    },
  };
}
